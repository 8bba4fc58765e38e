import { describe, expect, it } from 'vitest';
import { buildTimeline, chatReducer, initialChatState, type ChatAction, type ChatState } from './chatState';
import type { Citation, Message } from './types';

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
