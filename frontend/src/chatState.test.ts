import { describe, expect, it } from 'vitest';
import {
  applyDelta,
  buildTimeline,
  chatReducer,
  initialChatState,
  isAwaitingAnswer,
  type ChatAction,
  type ChatState,
  type StreamState,
} from './chatState';
import type { Citation, Message, ServerFrame } from './types';

const cite = (index: number): Citation => ({ index, documentTitle: `Doc ${index}`, section: 'S', snippet: 'snip' });

function msg(partial: Partial<Message> & Pick<Message, 'id' | 'role' | 'seq'>): Message {
  return { sessionId: 's1', text: '', createdAt: '2024-01-01T00:00:00Z', citations: [], ...partial };
}

const run = (actions: ChatAction[], state: ChatState = initialChatState) => actions.reduce(chatReducer, state);

const user = msg({ id: 'u1', role: 'user', seq: 1, text: 'hi', clientMessageId: 'c1' });
const answer = msg({ id: 'a1', role: 'assistant', seq: 2, text: 'Hello [1]', replyTo: 'u1', citations: [cite(1)] });

describe('chatReducer', () => {
  it('keeps a sent message pending until ack, then shows a typing stream', () => {
    let s = run([{ type: 'send', clientMessageId: 'c1', text: 'hi', now: 1 }]);
    expect(s.pending).toHaveLength(1);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['pending']);
    s = run([{ type: 'frame', frame: { type: 'ack', message: user, created: true }, now: 2 }], s);
    expect(s.pending).toHaveLength(0);
    expect(s.messages).toEqual([user]);
    expect(s.streams['u1']?.text).toBe('');
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['message', 'stream']);
  });

  it('streams deltas, tool calls and citations, then replaces them with done', () => {
    let s = run([
      { type: 'send', clientMessageId: 'c1', text: 'hi', now: 1 },
      { type: 'frame', frame: { type: 'ack', message: user, created: true }, now: 2 },
      { type: 'frame', frame: { type: 'tool_call', replyTo: 'u1', name: 'search', finished: false }, now: 3 },
    ]);
    expect(s.streams['u1']?.tool).toBe('search');
    s = run(
      [
        { type: 'frame', frame: { type: 'tool_call', replyTo: 'u1', name: 'search', finished: true }, now: 4 },
        { type: 'frame', frame: { type: 'citation', replyTo: 'u1', citation: cite(2) }, now: 5 },
        { type: 'frame', frame: { type: 'citation', replyTo: 'u1', citation: cite(1) }, now: 5 },
        { type: 'frame', frame: { type: 'text_delta', replyTo: 'u1', text: 'Hel' }, now: 6 },
        { type: 'frame', frame: { type: 'text_delta', replyTo: 'u1', text: 'lo' }, now: 7 },
      ],
      s,
    );
    expect(s.streams['u1']).toMatchObject({ text: 'Hello', tool: null });
    expect(s.streams['u1']?.citations.map((c) => c.index)).toEqual([1, 2]);
    s = run([{ type: 'frame', frame: { type: 'done', replyTo: 'u1', message: answer }, now: 8 }], s);
    expect(s.streams).toEqual({});
    expect(s.messages.map((m) => m.id)).toEqual(['u1', 'a1']);
    // late frames for a stored answer are ignored
    s = run([{ type: 'frame', frame: { type: 'text_delta', replyTo: 'u1', text: 'x' }, now: 9 }], s);
    expect(s.streams).toEqual({});
  });

  it('dedupes messages and drops streams answered by a refetch', () => {
    let s = run([
      { type: 'frame', frame: { type: 'ack', message: user, created: true }, now: 1 },
      { type: 'frame', frame: { type: 'text_delta', replyTo: 'u1', text: 'Hel' }, now: 2 },
      { type: 'merge_messages', messages: [user, answer] },
      { type: 'merge_messages', messages: [answer] },
    ]);
    expect(s.messages).toHaveLength(2);
    expect(s.streams).toEqual({});
    s = run([{ type: 'frame', frame: { type: 'ack', message: user, created: false }, now: 3 }], s);
    expect(s.streams).toEqual({});
  });

  it('places escalations after the answer and errors where they happened', () => {
    const s = run([
      { type: 'merge_messages', messages: [user] },
      { type: 'frame', frame: { type: 'escalation', replyTo: 'u1', reason: 'asked', message: 'A human will reply.' }, now: 1 },
      { type: 'frame', frame: { type: 'done', replyTo: 'u1', message: answer }, now: 2 },
      { type: 'frame', frame: { type: 'error', code: 'x', message: 'boom' }, now: 3 },
      { type: 'send', clientMessageId: 'c2', text: 'again', now: 4 },
    ]);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['message', 'message', 'escalation', 'error', 'pending']);
  });

  it('freezes a partial answer on error and expires silent typing indicators', () => {
    let s = run([
      { type: 'frame', frame: { type: 'ack', message: user, created: true }, now: 0 },
      { type: 'frame', frame: { type: 'text_delta', replyTo: 'u1', text: 'Part' }, now: 1 },
      { type: 'frame', frame: { type: 'error', code: null, message: 'failed' }, now: 2 },
    ]);
    expect(s.streams['u1']?.interrupted).toBe(true);
    s = run([
      { type: 'frame', frame: { type: 'ack', message: { ...user, id: 'u2', seq: 3, clientMessageId: 'c2' }, created: true }, now: 0 },
      { type: 'expire', now: 100_000 },
    ]);
    expect(s.streams).toEqual({});
  });
});

const frame = (f: ServerFrame, now = 10): ChatAction => ({ type: 'frame', frame: f, now });
const delta = (text: string, offset?: number, replyTo = 'u1'): ChatAction =>
  frame(offset === undefined ? { type: 'text_delta', replyTo, text } : { type: 'text_delta', replyTo, text, offset });
const acked = run([{ type: 'send', clientMessageId: 'c1', text: 'hi', now: 1 }, frame({ type: 'ack', message: user, created: true })]);

describe('text_delta offsets (replay after a reconnect)', () => {
  it('skips the replayed deltas already shown and appends the rest', () => {
    let s = run([delta('Thirty', 0)], acked);
    expect(s.streams['u1']?.text).toBe('Thirty');
    // reconnect: the edge replays the answer from the start
    s = run([delta('Thirty', 0), delta(' days', 6), delta(' from', 11)], s);
    expect(s.streams['u1']).toMatchObject({ text: 'Thirty days from', textLength: 16 });
    // and a second replay changes nothing
    s = run([delta('Thirty', 0), delta(' days', 6), delta(' from', 11)], s);
    expect(s.streams['u1']?.text).toBe('Thirty days from');
  });

  it('adds only the unseen tail of a delta that overlaps the shown text', () => {
    const s = run([delta('Thir', 0), delta('Thirty days', 0)], acked);
    expect(s.streams['u1']?.text).toBe('Thirty days');
  });

  it('keeps the shown text on a gap, and done brings the full answer', () => {
    let s = run([delta('Thirty', 0), delta(' from', 11)], acked);
    expect(s.streams['u1']?.text).toBe('Thirty');
    s = run([delta(' days', 6)], s);
    expect(s.streams['u1']?.text).toBe('Thirty days');
    s = run([frame({ type: 'done', replyTo: 'u1', message: answer })], s);
    expect(s.streams).toEqual({});
    expect(s.messages.at(-1)?.text).toBe('Hello [1]');
  });

  it('counts offsets in code points, as the edge does', () => {
    const s = run([delta('Hi 👋', 0), delta('Hi 👋', 0), delta('!', 4)], acked);
    expect(s.streams['u1']).toMatchObject({ text: 'Hi 👋!', textLength: 5 });
    const t = run([delta('Hi', 0), delta('Hi 👋 there', 0)], acked);
    expect(t.streams['u1']?.text).toBe('Hi 👋 there');
  });

  it('appends deltas without an offset (older edges), duplicates and all', () => {
    const s = run([delta('Thirty'), delta('Thirty'), delta(' days')], acked);
    expect(s.streams['u1']?.text).toBe('ThirtyThirty days');
  });

  it('revives an interrupted answer when its frames are replayed', () => {
    const base: StreamState = {
      replyTo: 'u1',
      text: 'Thirty',
      textLength: 6,
      citations: [],
      tool: null,
      interrupted: true,
      lastActivity: 0,
    };
    expect(applyDelta(base, { type: 'text_delta', replyTo: 'u1', text: 'Thirty', offset: 0 })).toMatchObject({
      text: 'Thirty',
      interrupted: false,
    });
  });
});

describe('errors answering a user_message', () => {
  const pending = run([
    { type: 'send', clientMessageId: 'c1', text: 'x'.repeat(8001), now: 1 },
    { type: 'send', clientMessageId: 'c2', text: 'second', now: 2 },
  ]);

  it('drops a non-retryable message from the resend queue and shows why on its bubble', () => {
    let s = run(
      [
        frame({
          type: 'error',
          code: 'invalid_message',
          message: 'text: String should have at most 8000 characters',
          clientMessageId: 'c1',
          retryable: false,
        }),
      ],
      pending,
    );
    expect(s.pending.map((p) => p.clientMessageId)).toEqual(['c2']);
    expect(s.rejected).toHaveLength(1);
    expect(s.rejected[0]?.message).toBe('the message is longer than 8,000 characters.');
    expect(s.errors).toEqual([]);
    expect(buildTimeline(s).map((i) => `${i.kind}:${i.key}`)).toEqual(['rejected:u:c1', 'pending:u:c2']);
    // a late duplicate error (answer to a resend) and a re-send of the same id change nothing
    const again = run(
      [
        frame({ type: 'error', code: 'invalid_message', message: 'again', clientMessageId: 'c1', retryable: false }),
        { type: 'send', clientMessageId: 'c1', text: 'x', now: 3 },
      ],
      s,
    );
    expect(again).toBe(s);
    // the refused message stays where it was when later messages are stored
    s = run([frame({ type: 'ack', message: { ...user, id: 'u2', clientMessageId: 'c2', text: 'second' }, created: true })], s);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['rejected', 'message', 'stream']);
    expect(isAwaitingAnswer(s)).toBe(true);
  });

  it('keeps a retryable message pending, with the reason, and adds no notice', () => {
    const s = run(
      [
        frame({
          type: 'error',
          code: 'unavailable',
          message: 'Try again shortly.',
          clientMessageId: 'c2',
          retryable: true,
        }),
      ],
      pending,
    );
    expect(s.pending.map((p) => [p.clientMessageId, p.lastError ?? null])).toEqual([
      ['c1', null],
      ['c2', 'Try again shortly.'],
    ]);
    expect(s.rejected).toEqual([]);
    expect(s.errors).toEqual([]);
    // once stored (the resend worked) it is a normal message
    const ok = run([frame({ type: 'ack', message: { ...user, clientMessageId: 'c2' }, created: true })], s);
    expect(ok.pending.map((p) => p.clientMessageId)).toEqual(['c1']);
  });

  it('uses the edge wording for other refusals', () => {
    const s = run(
      [frame({ type: 'error', code: 'forbidden', message: 'Not allowed.', clientMessageId: 'c2', retryable: false })],
      pending,
    );
    expect(s.rejected[0]?.message).toBe('Not allowed.');
  });
});

describe('errors of an answer', () => {
  const two = run([
    frame({ type: 'ack', message: user, created: true }),
    frame({ type: 'ack', message: { ...user, id: 'u2', seq: 2, clientMessageId: 'c2' }, created: true }),
    delta('Part', 0, 'u1'),
    delta('Other', 0, 'u2'),
  ]);

  it('marks only the answer named by replyTo as interrupted', () => {
    const s = run([frame({ type: 'error', replyTo: 'u1', code: 'agent_failed', message: 'failed' })], two);
    expect(s.streams['u1']?.interrupted).toBe(true);
    expect(s.streams['u2']?.interrupted).toBe(false);
    expect(s.errors.map((e) => e.code)).toEqual(['agent_failed']);
  });

  it('shows the same error once and clears errors by code', () => {
    let s = run(
      [
        frame({ type: 'error', code: 'unavailable', message: 'down' }),
        frame({ type: 'error', code: 'unavailable', message: 'down' }),
        frame({ type: 'error', code: 'bad_request', message: 'bad tenant' }),
      ],
      two,
    );
    expect(s.errors.map((e) => e.code)).toEqual(['unavailable', 'bad_request']);
    s = run([{ type: 'clear_errors', code: 'bad_request' }], s);
    expect(s.errors.map((e) => e.code)).toEqual(['unavailable']);
  });
});
