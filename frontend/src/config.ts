// Page-level settings read from the URL: `?tenant=NAME` and `?agent=NAME`.

import { codePointLength } from './codePoints';

export interface PageParams {
  /** Tenant to send to the edge; null means "let the edge use its default". */
  tenant: string | null;
  /** Preferred agent name; null means "the first agent the edge lists". */
  agent: string | null;
}

function clean(value: string | null): string | null {
  const v = value?.trim();
  return v ? v : null;
}

export function readPageParams(search: string): PageParams {
  const params = new URLSearchParams(search);
  return { tenant: clean(params.get('tenant')), agent: clean(params.get('agent')) };
}

/** Files the edge can read (the formats of the knowledge bases); others are refused with 415. */
export const ATTACHMENT_ACCEPT = '.pdf,.docx,.pptx,.xlsx,.csv,.json,.md,.markdown,.txt,.html,.htm';

/** The edge rejects longer messages (`invalid_message`). */
export const MAX_MESSAGE_CHARS = 8000;
/** The composer shows a character counter from this length on. */
export const COUNTER_FROM_CHARS = 7000;

/**
 * Length of a message as the edge counts it: Unicode code points of the
 * trimmed text (what is sent). `String.length` would count an emoji twice.
 */
export function messageLength(text: string): number {
  return codePointLength(text.trim());
}

/** What the composer shows for `text`: its length, a counter near the limit, "too long" above it. */
export function lengthStatus(text: string): { length: number; showCounter: boolean; tooLong: boolean } {
  const length = messageLength(text);
  return { length, showCounter: length >= COUNTER_FROM_CHARS, tooLong: length > MAX_MESSAGE_CHARS };
}

/** localStorage key under which the session id for a tenant + agent is kept. */
export function sessionStorageKey(tenant: string | null, agent: string): string {
  return `concierge.session:${tenant ?? ''}:${agent}`;
}

/** ws:// or wss:// URL of a session's stream on the page's own host. */
export function streamUrl(loc: Pick<Location, 'protocol' | 'host'>, sessionId: string, tenant: string | null): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = tenant ? `?tenant=${encodeURIComponent(tenant)}` : '';
  return `${scheme}//${loc.host}/api/v1/sessions/${encodeURIComponent(sessionId)}/stream${query}`;
}

/**
 * A random UUID v4. crypto.randomUUID() only exists in secure contexts
 * (https or localhost), so fall back to getRandomValues() on plain http.
 */
export function newClientMessageId(): string {
  const c: Crypto | undefined = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
