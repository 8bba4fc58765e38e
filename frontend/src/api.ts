// REST client for the edge. Every request carries the tenant header when the
// page was opened with `?tenant=NAME`; otherwise the edge uses its default.

import type { Agent, Attachment, Message, Page, Session } from './types';

export const API_BASE = '/api/v1';
export const TENANT_HEADER = 'X-Concierge-Tenant';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string | null;

  constructor(status: number, message: string, code: string | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  let code: string | null = null;
  try {
    const body: unknown = await res.json();
    if (body && typeof body === 'object') {
      const b = body as Record<string, unknown>;
      // FastAPI uses {"detail": ...}; accept {"message"/"code"} as well.
      const detail = b['detail'] ?? b['message'] ?? b['error'];
      if (typeof detail === 'string') message = detail;
      else if (detail && typeof detail === 'object') {
        const d = detail as Record<string, unknown>;
        if (typeof d['message'] === 'string') message = d['message'];
        if (typeof d['code'] === 'string') code = d['code'];
      }
      if (typeof b['code'] === 'string') code = b['code'];
    }
  } catch {
    // not JSON; keep the status line
  }
  return new ApiError(res.status, message, code);
}

export class ApiClient {
  private readonly tenant: string | null;
  private readonly fetchImpl: typeof fetch;

  constructor(tenant: string | null, fetchImpl: typeof fetch = (...args) => fetch(...args)) {
    this.tenant = tenant;
    this.fetchImpl = fetchImpl;
  }

  private async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.tenant) headers[TENANT_HEADER] = this.tenant;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (signal) init.signal = signal;
    const res = await this.fetchImpl(`${API_BASE}${path}`, init);
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as T;
  }

  async listAgents(signal?: AbortSignal): Promise<Agent[]> {
    const page = await this.request<Page<Agent>>('GET', '/agents', undefined, signal);
    return page.items ?? [];
  }

  createSession(agent: string, signal?: AbortSignal): Promise<Session> {
    return this.request<Session>('POST', '/sessions', { agent }, signal);
  }

  /**
   * Attach a file to the conversation (multipart part `file`). The edge answers
   * problem details on refusal: 413 too large, 415 unsupported type, 422 no
   * text in it, 403 the agent takes no files; they become an ApiError.
   */
  async uploadAttachment(sessionId: string, file: Blob, filename: string, signal?: AbortSignal): Promise<Attachment> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.tenant) headers[TENANT_HEADER] = this.tenant;
    const form = new FormData();
    form.append('file', file, filename);
    // No Content-Type header: the browser sets multipart/form-data with its boundary.
    const init: RequestInit = { method: 'POST', headers, body: form };
    if (signal) init.signal = signal;
    const res = await this.fetchImpl(`${API_BASE}/sessions/${encodeURIComponent(sessionId)}/attachments`, init);
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as Attachment;
  }

  getSession(id: string, signal?: AbortSignal): Promise<Session> {
    return this.request<Session>('GET', `/sessions/${encodeURIComponent(id)}`, undefined, signal);
  }

  /** All messages with seq > after, following `nextAfter` pages. */
  async listMessagesAfter(id: string, after: number, signal?: AbortSignal): Promise<Message[]> {
    const out: Message[] = [];
    let cursor: number | null = after;
    // Bounded: 1000 pages of 100 is far more than any chat holds.
    for (let i = 0; cursor !== null && i < 1000; i++) {
      const page: Page<Message> = await this.request<Page<Message>>(
        'GET',
        `/sessions/${encodeURIComponent(id)}/messages?after=${cursor}&limit=100`,
        undefined,
        signal,
      );
      out.push(...(page.items ?? []));
      const next = page.nextAfter ?? null;
      cursor = next !== null && next !== cursor ? next : null;
    }
    return out;
  }
}
