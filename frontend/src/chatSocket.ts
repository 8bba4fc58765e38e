// One session's WebSocket, reconnecting with exponential backoff + jitter.

import type { ServerFrame, UserMessageFrame } from './types';

export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ChatSocketOptions {
  url: string;
  onFrame: (frame: ServerFrame) => void;
  /** Called on every successful (re)connect; `reconnected` is false the first time. */
  onOpen: (reconnected: boolean) => void;
  onStatus: (status: ConnectionStatus) => void;
  /**
   * The edge closed the socket for good (`session_not_found`: 4404,
   * `bad_request`: 4400). The socket is stopped; no reconnect follows.
   */
  onGiveUp?: (reason: CloseAction, code: number, closeReason: string) => void;
  /** The socket closed and a reconnect is scheduled (e.g. 1013, a network drop). */
  onRetry?: (code: number) => void;
  WebSocketImpl?: typeof WebSocket;
}

/** The session does not exist (for this tenant). */
export const CLOSE_SESSION_NOT_FOUND = 4404;
/** Bad request, e.g. an invalid tenant. */
export const CLOSE_BAD_REQUEST = 4400;
/** Try again later: a back end is unavailable. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

export type CloseAction = 'reconnect' | 'session_not_found' | 'bad_request';

/**
 * After the edge gave up on a socket: a session that does not exist is
 * replaced by a new one (as on a 404 at load) unless that was just done, which
 * would loop; a bad request is shown as an error.
 */
export function afterGiveUp(
  action: CloseAction,
  now: number,
  lastReplacedAt: number,
  minInterval = 15_000,
): 'new_session' | 'show_error' {
  return action === 'session_not_found' && now - lastReplacedAt >= minInterval ? 'new_session' : 'show_error';
}

/** What a close code means for the client. Anything unknown is retried. */
export function closeAction(code: number): CloseAction {
  if (code === CLOSE_SESSION_NOT_FOUND) return 'session_not_found';
  if (code === CLOSE_BAD_REQUEST) return 'bad_request';
  return 'reconnect'; // 1013 and network drops (1006) alike: back off and retry
}

/** WebSocket.OPEN (not read from the global, which tests may not have). */
const WS_OPEN = 1;
const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
/** A connection must stay up this long before the backoff starts over. */
const STABLE_AFTER_MS = 5_000;

export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempt));
  return Math.round(exp * (0.75 + random() * 0.5));
}

export function parseServerFrame(data: unknown): ServerFrame | null {
  if (typeof data !== 'string') return null;
  try {
    const v: unknown = JSON.parse(data);
    if (v && typeof v === 'object' && typeof (v as { type?: unknown }).type === 'string') return v as ServerFrame;
  } catch {
    // ignore malformed frames
  }
  return null;
}

export class ChatSocket {
  private readonly opts: ChatSocketOptions;
  private ws: WebSocket | null = null;
  private attempt = 0;
  private everOpened = false;
  private stopped = true;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private stableTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(opts: ChatSocketOptions) {
    this.opts = opts;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (typeof window !== 'undefined') window.addEventListener('online', this.reconnectNow);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (typeof window !== 'undefined') window.removeEventListener('online', this.reconnectNow);
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
      try {
        ws.close(1000, 'client closing');
      } catch {
        // already closed
      }
    }
    this.opts.onStatus('closed');
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WS_OPEN;
  }

  /** Sends now if connected; returns false if not (the caller resends on open). */
  send(frame: UserMessageFrame): boolean {
    if (!this.ws || this.ws.readyState !== WS_OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  private readonly reconnectNow = (): void => {
    if (this.stopped || this.isOpen) return;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    }
  };

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.retryTimer = this.stableTimer = null;
  }

  private connect(): void {
    if (this.stopped) return;
    this.opts.onStatus(this.everOpened ? 'reconnecting' : 'connecting');
    const Impl = this.opts.WebSocketImpl ?? WebSocket;
    let ws: WebSocket;
    try {
      ws = new Impl(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.stableTimer = setTimeout(() => {
        this.attempt = 0;
      }, STABLE_AFTER_MS);
      this.opts.onStatus('open');
      this.opts.onOpen(reconnected);
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      const frame = parseServerFrame(ev.data);
      if (frame) this.opts.onFrame(frame);
    };
    ws.onerror = () => {
      // onclose follows and schedules the retry
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const action = closeAction(ev.code);
      if (action === 'reconnect') {
        this.scheduleReconnect();
        this.opts.onRetry?.(ev.code);
        return;
      }
      this.stop();
      this.opts.onGiveUp?.(action, ev.code, ev.reason);
    };
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.clearTimers();
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.opts.onStatus('reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}
