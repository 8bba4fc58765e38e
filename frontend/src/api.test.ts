import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from './api';

function fakeFetch(routes: Record<string, { status?: number; body: unknown }>, seen: { url: string; init: RequestInit }[]) {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    seen.push({ url, init: init ?? {} });
    const r = routes[url];
    if (!r) return new Response(JSON.stringify({ detail: 'nope' }), { status: 404 });
    return new Response(JSON.stringify(r.body), { status: r.status ?? 200 });
  }) as typeof fetch;
}

describe('ApiClient', () => {
  it('follows nextAfter pages and sends the tenant header', async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const m = (seq: number) => ({ id: `m${seq}`, seq });
    const api = new ApiClient(
      'acme',
      fakeFetch(
        {
          '/api/v1/sessions/s1/messages?after=0&limit=100': { body: { items: [m(1), m(2)], nextAfter: 2 } },
          '/api/v1/sessions/s1/messages?after=2&limit=100': { body: { items: [m(3)], nextAfter: null } },
        },
        seen,
      ),
    );
    const items = await api.listMessagesAfter('s1', 0);
    expect(items.map((i) => i.seq)).toEqual([1, 2, 3]);
    expect((seen[0]?.init.headers as Record<string, string>)['X-Concierge-Tenant']).toBe('acme');
  });

  it('sends no tenant header by default and surfaces API errors', async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = new ApiClient(null, fakeFetch({}, seen));
    await expect(api.getSession('gone')).rejects.toMatchObject({ status: 404, message: 'nope' });
    await expect(api.getSession('gone')).rejects.toBeInstanceOf(ApiError);
    expect(seen[0]?.init.headers).not.toHaveProperty('X-Concierge-Tenant');
  });
});

describe('ApiClient.uploadAttachment', () => {
  it('posts the file as multipart part `file` with the tenant header', async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = new ApiClient(
      'acme',
      fakeFetch({ '/api/v1/sessions/s1/attachments': { status: 201, body: { id: 'att1', filename: 'a.txt' } } }, seen),
    );
    const attachment = await api.uploadAttachment('s1', new Blob(['hello'], { type: 'text/plain' }), 'a.txt');
    expect(attachment.id).toBe('att1');
    const body = seen[0]?.init.body;
    expect(body).toBeInstanceOf(FormData);
    expect((body as FormData).get('file')).toBeInstanceOf(Blob);
    const headers = seen[0]?.init.headers as Record<string, string>;
    expect(headers['X-Concierge-Tenant']).toBe('acme');
    expect(headers).not.toHaveProperty('Content-Type');
  });

  it('surfaces the problem detail of a refused file', async () => {
    const problem = { type: 'about:blank', title: 'File too large', status: 413, detail: 'at most 4,096 bytes' };
    const api = new ApiClient(null, fakeFetch({ '/api/v1/sessions/s1/attachments': { status: 413, body: problem } }, []));
    await expect(api.uploadAttachment('s1', new Blob(['x']), 'big.txt')).rejects.toMatchObject({
      status: 413,
      message: 'at most 4,096 bytes',
    });
  });
});
