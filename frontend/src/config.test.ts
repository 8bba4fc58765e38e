import { describe, expect, it } from 'vitest';
import { newClientMessageId, readPageParams, sessionStorageKey, streamUrl } from './config';

describe('config', () => {
  it('reads tenant and agent from the page URL', () => {
    expect(readPageParams('?tenant=acme&agent=acme-support')).toEqual({ tenant: 'acme', agent: 'acme-support' });
    expect(readPageParams('?tenant=')).toEqual({ tenant: null, agent: null });
  });

  it('builds the stream URL on the page host', () => {
    expect(streamUrl({ protocol: 'https:', host: 'x.example' }, 'abc', 'acme')).toBe(
      'wss://x.example/api/v1/sessions/abc/stream?tenant=acme',
    );
    expect(streamUrl({ protocol: 'http:', host: '127.0.0.1:8080' }, 'abc', null)).toBe(
      'ws://127.0.0.1:8080/api/v1/sessions/abc/stream',
    );
  });

  it('keys sessions by tenant and agent', () => {
    expect(sessionStorageKey(null, 'a')).not.toBe(sessionStorageKey('t', 'a'));
  });

  it('makes v4 UUIDs', () => {
    expect(newClientMessageId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
