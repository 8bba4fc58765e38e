import { describe, expect, it } from 'vitest';
import { codePointLength, dropCodePoints } from './codePoints';
import {
  COUNTER_FROM_CHARS,
  lengthStatus,
  MAX_MESSAGE_CHARS,
  messageLength,
  newClientMessageId,
  readPageParams,
  sessionStorageKey,
  streamUrl,
} from './config';

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

describe('message length', () => {
  it('counts code points of the trimmed text, like the edge', () => {
    expect(messageLength('  hi \n')).toBe(2);
    expect(messageLength('👋👋')).toBe(2);
    expect(codePointLength('a👋b')).toBe(3);
    expect(dropCodePoints('a👋b', 2)).toBe('b');
  });

  it('shows a counter near the limit and refuses text above it', () => {
    expect(lengthStatus('x'.repeat(COUNTER_FROM_CHARS - 1))).toEqual({
      length: COUNTER_FROM_CHARS - 1,
      showCounter: false,
      tooLong: false,
    });
    expect(lengthStatus('x'.repeat(MAX_MESSAGE_CHARS))).toMatchObject({ showCounter: true, tooLong: false });
    expect(lengthStatus(`${'x'.repeat(MAX_MESSAGE_CHARS)}   `)).toMatchObject({ tooLong: false });
    expect(lengthStatus('x'.repeat(MAX_MESSAGE_CHARS + 1))).toMatchObject({ showCounter: true, tooLong: true });
    expect(MAX_MESSAGE_CHARS).toBe(8000);
  });
});
