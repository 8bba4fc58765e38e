import { describe, expect, it } from 'vitest';
import { buildTimeline, chatReducer, initialChatState, systemNote, type ChatAction, type ChatState } from './chatState';
import { handlerText } from './components/Header';
import type { Attachment, Message, ServerFrame } from './types';

function msg(partial: Partial<Message> & Pick<Message, 'id' | 'role' | 'seq'>): Message {
  return { sessionId: 's1', text: '', createdAt: '2024-01-01T00:00:00Z', citations: [], ...partial };
}

const run = (actions: ChatAction[], state: ChatState = initialChatState) => actions.reduce(chatReducer, state);
const frame = (f: ServerFrame, now = 10): ChatAction => ({ type: 'frame', frame: f, now });

const question = msg({ id: 'u1', role: 'user', seq: 2, text: 'It says E42', clientMessageId: 'c1' });
const joinedNote = msg({ id: 'j1', role: 'system', seq: 1, text: 'Ana joined the conversation', clientMessageId: 'takeover:t1' });
const reply = msg({ id: 'h1', role: 'human', seq: 3, text: 'Clean the brush.', author: 'Ana', clientMessageId: 'r1' });
const leftNote = msg({ id: 'l1', role: 'system', seq: 4, text: 'Ana left; the assistant is back', clientMessageId: 'handback:t2' });

describe('a human agent on the conversation', () => {
  it('joins: the notice is shown once, the header names them and no typing indicator waits for the bot', () => {
    let s = run([
      { type: 'send', clientMessageId: 'c0', text: 'hello?', now: 1 },
      frame({ type: 'ack', message: msg({ id: 'u0', role: 'user', seq: 0, clientMessageId: 'c0' }), created: true }),
    ]);
    expect(Object.keys(s.streams)).toEqual(['u0']);
    s = run([frame({ type: 'human_joined', name: 'Ana', message: joinedNote }), frame({ type: 'human_joined', name: 'Ana', message: joinedNote })], s);
    expect(s.sessionStatus).toBe('human');
    expect(s.handler).toBe('Ana');
    expect(s.streams).toEqual({});
    const notices = buildTimeline(s).filter((i) => i.kind === 'message' && i.message.role === 'system');
    expect(notices).toHaveLength(1);
    expect(handlerText(s.sessionStatus, s.handler)).toBe('Ana from the support team is chatting with you');
  });

  it('an ack while a human holds the session starts no typing indicator', () => {
    const s = run([
      frame({ type: 'human_joined', name: 'Ana', message: joinedNote }),
      { type: 'send', clientMessageId: 'c1', text: 'It says E42', now: 1 },
      frame({ type: 'ack', message: question, created: true, sessionStatus: 'human' }),
    ]);
    expect(s.pending).toEqual([]);
    expect(s.streams).toEqual({});
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['message', 'message']);
  });

  it('an ack while escalated also waits silently, and says who answers', () => {
    const s = run([frame({ type: 'ack', message: question, created: true, sessionStatus: 'escalated' })]);
    expect(s.streams).toEqual({});
    expect(s.sessionStatus).toBe('escalated');
    expect(handlerText(s.sessionStatus, s.handler)).toBe('Waiting for a support agent to join…');
  });

  it("shows the customer's own message once when it comes back as a message frame", () => {
    const s = run([
      { type: 'send', clientMessageId: 'c1', text: 'It says E42', now: 1 },
      frame({ type: 'message', message: question }),
      frame({ type: 'ack', message: question, created: true, sessionStatus: 'human' }),
      frame({ type: 'message', message: question }),
    ]);
    expect(s.messages).toEqual([question]);
    expect(s.pending).toEqual([]);
    expect(buildTimeline(s).map((i) => i.key)).toEqual(['u:c1']);
  });

  it("renders the human's reply with its author and the hand-back", () => {
    let s = run([frame({ type: 'human_joined', name: 'Ana', message: joinedNote }), frame({ type: 'message', message: reply })]);
    const item = buildTimeline(s).find((i) => i.kind === 'message' && i.message.role === 'human');
    expect(item?.kind === 'message' && item.message.author).toBe('Ana');
    s = run([frame({ type: 'human_left', name: 'Ana', message: leftNote })], s);
    expect(s.sessionStatus).toBe('bot');
    expect(s.handler).toBeNull();
    expect(handlerText(s.sessionStatus, s.handler)).toBeNull();
    expect(s.messages.map((m) => m.id)).toEqual(['j1', 'h1', 'l1']);
    // The bot answers again: the next ack shows a typing indicator.
    s = run([frame({ type: 'ack', message: msg({ id: 'u9', role: 'user', seq: 5, clientMessageId: 'c9' }), created: true, sessionStatus: 'bot' })], s);
    expect(Object.keys(s.streams)).toEqual(['u9']);
  });

  it('a join frame without a stored message becomes a notice, hidden once the message is loaded', () => {
    let s = run([frame({ type: 'human_joined', name: 'Ana' }, 5)]);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['handoff']);
    s = run([{ type: 'merge_messages', messages: [joinedNote] }], s);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['message']);
  });

  it('the loaded session says who holds it', () => {
    const s = run([{ type: 'session', status: 'human', handler: 'Ana' }]);
    expect([s.sessionStatus, s.handler]).toEqual(['human', 'Ana']);
    expect(run([{ type: 'session', status: undefined, handler: undefined }]).sessionStatus).toBe('bot');
  });

  it('an escalation marks the session as waiting for a human', () => {
    const s = run([frame({ type: 'escalation', replyTo: 'u1', reason: 'asked', message: 'A human will reply.' })]);
    expect(s.sessionStatus).toBe('escalated');
  });
});

describe('system notes', () => {
  it('are told apart by the id the edge gives them', () => {
    expect(systemNote(joinedNote).kind).toBe('joined');
    expect(systemNote(leftNote).kind).toBe('left');
    const attached = msg({
      id: 'a1',
      role: 'system',
      seq: 1,
      clientMessageId: 'attachment:x',
      text: 'Customer attached "manual (v2).pdf" (attachment x, PDF, 2 pages, 120 characters of text).',
    });
    expect(systemNote(attached)).toMatchObject({ kind: 'attachment', filename: 'manual (v2).pdf' });
    expect(systemNote(msg({ id: 'n', role: 'system', seq: 1, text: 'note' })).kind).toBe('note');
  });
});

describe('uploads', () => {
  const note = msg({
    id: 'a1',
    role: 'system',
    seq: 1,
    clientMessageId: 'attachment:att1',
    text: 'Customer attached "manual.pdf" (attachment att1, PDF, 2 pages, 120 characters of text).',
  });
  const attachment: Attachment = {
    id: 'att1',
    sessionId: 's1',
    filename: 'manual.pdf',
    contentType: 'application/pdf',
    sizeBytes: 2048,
    format: 'pdf',
    chars: 120,
    pages: 2,
    truncated: false,
    createdAt: '2024-01-01T00:00:00Z',
    message: note,
  };

  it('shows a chip while uploading, then the stored note', () => {
    let s = run([{ type: 'upload_start', key: 'k1', filename: 'manual.pdf', sizeBytes: 2048 }]);
    expect(buildTimeline(s).map((i) => i.kind)).toEqual(['upload']);
    expect(s.uploads[0]?.status).toBe('uploading');
    s = run([{ type: 'upload_done', key: 'k1', attachment }], s);
    expect(s.uploads).toEqual([]);
    expect(s.messages).toEqual([note]);
    // the same note arriving as a message frame is not shown twice
    s = run([frame({ type: 'message', message: note })], s);
    expect(buildTimeline(s)).toHaveLength(1);
  });

  it("keeps a refused upload with the edge's reason until dismissed", () => {
    let s = run([
      { type: 'upload_start', key: 'k1', filename: 'huge.pdf', sizeBytes: 50_000_000 },
      { type: 'upload_failed', key: 'k1', message: 'the file is larger; at most 10,485,760 bytes', httpStatus: 413 },
    ]);
    expect(s.uploads[0]).toMatchObject({ status: 'failed', httpStatus: 413, error: 'the file is larger; at most 10,485,760 bytes' });
    s = run([{ type: 'dismiss_upload', key: 'k1' }], s);
    expect(s.uploads).toEqual([]);
  });
});
