import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { afterGiveUp, ChatSocket, closeAction, type CloseAction } from './chatSocket';

/** A stand-in WebSocket the test opens and closes by hand. */
class FakeSocket {
  static instances: FakeSocket[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
    FakeSocket.instances.push(this);
  }
  send(): void {}
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function start() {
  const gaveUp: [CloseAction, number, string][] = [];
  const retries: number[] = [];
  const statuses: string[] = [];
  const sock = new ChatSocket({
    url: 'ws://x/api/v1/sessions/s/stream',
    onFrame: () => {},
    onOpen: () => {},
    onStatus: (s) => statuses.push(s),
    onGiveUp: (action, code, reason) => gaveUp.push([action, code, reason]),
    onRetry: (code) => retries.push(code),
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
  sock.start();
  return { sock, gaveUp, statuses, retries };
}

describe('close codes', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.instances = [];
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('maps codes to what the client does', () => {
    expect(closeAction(4404)).toBe('session_not_found');
    expect(closeAction(4400)).toBe('bad_request');
    expect(closeAction(1013)).toBe('reconnect');
    expect(closeAction(1006)).toBe('reconnect');
    expect(closeAction(1000)).toBe('reconnect');
  });

  it('replaces a missing session, but not in a loop, and shows bad requests', () => {
    expect(afterGiveUp('session_not_found', 100_000, 0)).toBe('new_session');
    expect(afterGiveUp('session_not_found', 100_000, 95_000)).toBe('show_error');
    expect(afterGiveUp('bad_request', 100_000, 0)).toBe('show_error');
  });

  it('stops reconnecting on 4404 and 4400 and says why', () => {
    for (const code of [4404, 4400]) {
      FakeSocket.instances = [];
      const { sock, gaveUp, statuses } = start();
      FakeSocket.instances[0]?.open();
      FakeSocket.instances[0]?.serverClose(code, 'nope');
      vi.advanceTimersByTime(60_000);
      expect(FakeSocket.instances).toHaveLength(1);
      expect(gaveUp).toEqual([[code === 4404 ? 'session_not_found' : 'bad_request', code, 'nope']]);
      expect(statuses.at(-1)).toBe('closed');
      expect(sock.isOpen).toBe(false);
    }
  });

  it('reconnects with growing backoff on 1013', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // no jitter: 0.5 s, then 1 s
    const { gaveUp, statuses, retries } = start();
    FakeSocket.instances[0]?.open();
    FakeSocket.instances[0]?.serverClose(1013, 'try again later');
    expect(statuses.at(-1)).toBe('reconnecting');
    vi.advanceTimersByTime(450);
    expect(FakeSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.instances).toHaveLength(2);
    FakeSocket.instances[1]?.open();
    FakeSocket.instances[1]?.serverClose(1013);
    vi.advanceTimersByTime(950);
    expect(FakeSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.instances).toHaveLength(3);
    expect(gaveUp).toEqual([]);
    expect(retries).toEqual([1013, 1013]);
  });
});
