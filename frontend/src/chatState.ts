// Pure chat state: stored messages, un-acked user messages, assistant answers
// being streamed, who answers (bot or human agent), file uploads, and notices.
// Kept free of React and I/O so it is unit-tested.

import { codePointLength, dropCodePoints } from './codePoints';
import { MAX_MESSAGE_CHARS, messageLength } from './config';
import type { Attachment, Citation, Message, ServerFrame, SessionStatus } from './types';

/** A user message typed here that the server has not acknowledged yet (the resend queue). */
export interface PendingMessage {
  clientMessageId: string;
  text: string;
  createdAt: number;
  /** The last retryable error the edge answered it with; it is sent again later. */
  lastError?: string | null;
}

/** A user message the edge refused for good (`retryable: false`): shown, never resent. */
export interface RejectedMessage {
  clientMessageId: string;
  text: string;
  createdAt: number;
  code: string | null;
  /** Why, shown as "Not sent: …". */
  message: string;
  /** Shown after the stored messages with seq <= anchorSeq. */
  anchorSeq: number;
}

/** An assistant answer being streamed, keyed by the user message it answers. */
export interface StreamState {
  replyTo: string;
  text: string;
  /** Length of `text` in code points, the unit of the edge's `text_delta.offset`. */
  textLength: number;
  citations: Citation[];
  /** Name of a tool call in progress, or null. */
  tool: string | null;
  /** The stream stopped without a final message (error or silence). */
  interrupted: boolean;
  lastActivity: number;
}

export interface EscalationNotice {
  key: string;
  replyTo: string | null;
  reason: string | null;
  message: string;
}

/** A human agent joined or left, told by a frame that carried no stored message (older edges). */
export interface HandoffNotice {
  key: string;
  kind: 'joined' | 'left';
  name: string;
  text: string;
}

/** A file being uploaded, or one the edge refused (shown with its problem detail). */
export interface UploadState {
  key: string;
  filename: string;
  sizeBytes: number;
  status: 'uploading' | 'failed';
  /** Why it failed (the problem's detail, e.g. the size limit). */
  error: string | null;
  /** HTTP status of the failure (413 too large, 415 unsupported type, …). */
  httpStatus: number | null;
}

export interface ErrorNotice {
  key: string;
  code: string | null;
  message: string;
  /** Shown after the stored messages with seq <= anchorSeq. */
  anchorSeq: number;
}

export interface ChatState {
  /** Stored messages, unique by id, ordered by seq. */
  messages: Message[];
  pending: PendingMessage[];
  rejected: RejectedMessage[];
  streams: Record<string, StreamState>;
  escalations: EscalationNotice[];
  errors: ErrorNotice[];
  /** Who answers: the bot, nobody yet (escalated, waiting for a human), or `handler`. */
  sessionStatus: SessionStatus;
  /** Name of the human agent holding the conversation. */
  handler: string | null;
  handoffs: HandoffNotice[];
  uploads: UploadState[];
}

export const initialChatState: ChatState = {
  messages: [],
  pending: [],
  rejected: [],
  streams: {},
  escalations: [],
  errors: [],
  sessionStatus: 'bot',
  handler: null,
  handoffs: [],
  uploads: [],
};

/** Empty "typing" streams are dropped after this long without any frame. */
export const TYPING_EXPIRY_MS = 45_000;
/** Streams with text but no frame for this long are shown as interrupted. */
export const STREAM_STALL_MS = 60_000;

export type ChatAction =
  | { type: 'reset' }
  | { type: 'merge_messages'; messages: Message[] }
  /** The session as loaded: who answers it. */
  | { type: 'session'; status: SessionStatus | null | undefined; handler: string | null | undefined }
  | { type: 'upload_start'; key: string; filename: string; sizeBytes: number }
  | { type: 'upload_done'; key: string; attachment: Attachment }
  | { type: 'upload_failed'; key: string; message: string; httpStatus: number | null }
  | { type: 'dismiss_upload'; key: string }
  | { type: 'send'; clientMessageId: string; text: string; now: number }
  | { type: 'frame'; frame: ServerFrame; now: number }
  | { type: 'local_error'; code: string | null; message: string; key: string }
  | { type: 'dismiss_error'; key: string }
  /** Drop the error notices with this code (e.g. one the page shows elsewhere). */
  | { type: 'clear_errors'; code: string }
  | { type: 'expire'; now: number };

export function lastSeq(state: ChatState): number {
  let max = 0;
  for (const m of state.messages) if (m.seq > max) max = m.seq;
  return max;
}

function omit(streams: Record<string, StreamState>, key: string): Record<string, StreamState> {
  if (!(key in streams)) return streams;
  const out = { ...streams };
  delete out[key];
  return out;
}

function hasStoredReply(messages: Message[], userMessageId: string): boolean {
  return messages.some((m) => m.role === 'assistant' && m.replyTo === userMessageId);
}

function mergeMessages(state: ChatState, incoming: Message[]): ChatState {
  if (incoming.length === 0) return state;
  const byId = new Map(state.messages.map((m) => [m.id, m] as const));
  for (const m of incoming) byId.set(m.id, m);
  const messages = [...byId.values()].sort((a, b) => a.seq - b.seq);

  const acked = new Set(incoming.map((m) => m.clientMessageId).filter((c): c is string => !!c));
  const pending = state.pending.filter((p) => !acked.has(p.clientMessageId));
  const rejected = state.rejected.some((r) => acked.has(r.clientMessageId))
    ? state.rejected.filter((r) => !acked.has(r.clientMessageId))
    : state.rejected;

  let streams = state.streams;
  for (const m of incoming) {
    if (m.role === 'assistant' && m.replyTo) streams = omit(streams, m.replyTo);
  }
  return { ...state, messages, pending, rejected, streams };
}

function updateStream(
  state: ChatState,
  replyTo: string,
  now: number,
  update: (s: StreamState) => StreamState,
): ChatState {
  // An answer that is already stored is final: late frames are ignored.
  if (hasStoredReply(state.messages, replyTo)) return state;
  const current: StreamState = state.streams[replyTo] ?? {
    replyTo,
    text: '',
    textLength: 0,
    citations: [],
    tool: null,
    interrupted: false,
    lastActivity: now,
  };
  const next = update({ ...current, lastActivity: now });
  return { ...state, streams: { ...state.streams, [replyTo]: next } };
}

function upsertCitation(list: Citation[], c: Citation): Citation[] {
  const rest = list.filter((x) => x.index !== c.index);
  return [...rest, c].sort((a, b) => a.index - b.index);
}

function dropEmptyStreams(streams: Record<string, StreamState>, keep: (s: StreamState) => StreamState | null) {
  const out: Record<string, StreamState> = {};
  for (const [k, s] of Object.entries(streams)) {
    const v = keep(s);
    if (v) out[k] = v;
  }
  return out;
}

type TextDelta = Extract<ServerFrame, { type: 'text_delta' }>;
type ErrorFrame = Extract<ServerFrame, { type: 'error' }>;

/**
 * Appends a delta to the streamed text. With an `offset` (the answer's length
 * before the delta), a replayed delta that is already shown is skipped (only
 * its unseen tail is added, if any) and one after a gap is not applied: the
 * `done` frame or a messages refetch brings the full text. Without an offset
 * (older edges) the delta is appended.
 */
export function applyDelta(s: StreamState, frame: TextDelta): StreamState {
  const live = { ...s, interrupted: false };
  const deltaLength = codePointLength(frame.text);
  const offset = frame.offset;
  if (typeof offset !== 'number' || offset === s.textLength) {
    return { ...live, text: s.text + frame.text, textLength: s.textLength + deltaLength };
  }
  if (offset < s.textLength) {
    const unseen = offset + deltaLength - s.textLength;
    if (unseen <= 0) return live;
    return { ...live, text: s.text + dropCodePoints(frame.text, deltaLength - unseen), textLength: s.textLength + unseen };
  }
  return live; // a gap: keep what is shown
}

function addErrorNotice(state: ChatState, frame: ErrorFrame, now: number): ErrorNotice[] {
  const code = frame.code ?? null;
  const message = frame.message || 'Something went wrong.';
  const anchorSeq = lastSeq(state);
  const prev = state.errors[state.errors.length - 1];
  // The same failure again (e.g. on every reconnect attempt) is shown once.
  if (prev && prev.code === code && prev.message === message && prev.anchorSeq === anchorSeq) return state.errors;
  return [...state.errors, { key: `err:${now}:${state.errors.length}`, code, message, anchorSeq }];
}

/** Human wording for a message the edge refused for good. */
export function rejectionText(code: string | null, message: string, text: string): string {
  if (code === 'invalid_message') {
    if (messageLength(text) > MAX_MESSAGE_CHARS) {
      return `the message is longer than ${MAX_MESSAGE_CHARS.toLocaleString('en-US')} characters.`;
    }
    if (messageLength(text) === 0) return 'the message is empty.';
  }
  return message || 'the message was refused.';
}

/** An error answering one `user_message` frame (it carries `clientMessageId`). */
function applyMessageError(state: ChatState, frame: ErrorFrame & { clientMessageId: string }, now: number): ChatState {
  const id = frame.clientMessageId;
  const p = state.pending.find((x) => x.clientMessageId === id);
  if (!p) {
    // Already stored, already refused, or a stale reply to an earlier resend.
    const known =
      state.rejected.some((r) => r.clientMessageId === id) || state.messages.some((m) => m.clientMessageId === id);
    return known ? state : { ...state, errors: addErrorNotice(state, frame, now) };
  }
  if (frame.retryable === false) {
    const code = frame.code ?? null;
    const rejected: RejectedMessage = {
      clientMessageId: id,
      text: p.text,
      createdAt: p.createdAt,
      code,
      message: rejectionText(code, frame.message, p.text),
      anchorSeq: lastSeq(state),
    };
    return {
      ...state,
      pending: state.pending.filter((x) => x !== p),
      rejected: [...state.rejected, rejected],
    };
  }
  // Retryable (or an older edge that does not say): stays queued for a resend.
  const lastError = frame.message || 'Not sent yet.';
  if (p.lastError === lastError) return state;
  return { ...state, pending: state.pending.map((x) => (x === p ? { ...x, lastError } : x)) };
}

/** What a system message is, from the id the edge gives it (`takeover:…`, `handback:…`, `attachment:…`). */
export type SystemNote =
  | { kind: 'joined' | 'left'; text: string }
  | { kind: 'attachment'; filename: string; text: string }
  | { kind: 'note'; text: string };

const ATTACHED = /^Customer attached "(.+)" \(attachment /;

export function systemNote(m: Message): SystemNote {
  const id = m.clientMessageId ?? '';
  if (id.startsWith('takeover:')) return { kind: 'joined', text: m.text };
  if (id.startsWith('handback:')) return { kind: 'left', text: m.text };
  if (id.startsWith('attachment:')) {
    const match = ATTACHED.exec(m.text);
    return { kind: 'attachment', filename: match?.[1] ?? m.text, text: m.text };
  }
  return { kind: 'note', text: m.text };
}

/** While a human is on it (or awaited), the bot does not answer: no typing indicator. */
function botAnswers(status: SessionStatus): boolean {
  return status === 'bot';
}

/** Typing indicators of answers that will not come (the bot stepped aside); partial answers stay. */
function dropTyping(streams: Record<string, StreamState>): Record<string, StreamState> {
  return Object.values(streams).some((s) => !s.text) ? dropEmptyStreams(streams, (s) => (s.text ? s : null)) : streams;
}

type HandoffFrame = Extract<ServerFrame, { type: 'human_joined' }> | Extract<ServerFrame, { type: 'human_left' }>;

function applyHandoff(state: ChatState, frame: HandoffFrame, now: number): ChatState {
  const joined = frame.type === 'human_joined';
  const name = frame.name?.trim() || 'A support agent';
  let next: ChatState = {
    ...state,
    sessionStatus: joined ? 'human' : 'bot',
    handler: joined ? name : null,
    streams: joined ? dropTyping(state.streams) : state.streams,
  };
  if (frame.message) return mergeMessages(next, [frame.message]);
  const text = joined ? `${name} joined the conversation` : `${name} left; the assistant is back`;
  const last = state.handoffs[state.handoffs.length - 1];
  if (last && last.text === text) return next;
  next = {
    ...next,
    handoffs: [...state.handoffs, { key: `handoff:${now}:${state.handoffs.length}`, kind: joined ? 'joined' : 'left', name, text }],
  };
  return next;
}

function applyFrame(state: ChatState, frame: ServerFrame, now: number): ChatState {
  switch (frame.type) {
    case 'ack': {
      let merged = mergeMessages(state, [frame.message]);
      const m = frame.message;
      const status = frame.sessionStatus;
      if (status && status !== merged.sessionStatus) {
        merged = { ...merged, sessionStatus: status, handler: status === 'human' ? merged.handler : null };
      }
      if (!botAnswers(merged.sessionStatus)) return merged;
      if (m.role !== 'user' || hasStoredReply(merged.messages, m.id) || merged.streams[m.id]) return merged;
      // Show a typing indicator until the first delta arrives.
      return updateStream(merged, m.id, now, (s) => s);
    }
    case 'text_delta':
      return updateStream(state, frame.replyTo, now, (s) => applyDelta(s, frame));
    case 'tool_call':
      return updateStream(state, frame.replyTo, now, (s) => ({
        ...s,
        tool: frame.finished ? null : frame.name,
        interrupted: false,
      }));
    case 'citation':
      return updateStream(state, frame.replyTo, now, (s) => ({
        ...s,
        citations: upsertCitation(s.citations, frame.citation),
      }));
    case 'message':
      // Our own message comes back this way too: merged by id, it is shown once.
      return mergeMessages(state, [frame.message]);
    case 'human_joined':
    case 'human_left':
      return applyHandoff(state, frame, now);
    case 'escalation': {
      const key = `esc:${frame.replyTo}:${frame.message}`;
      const escalations = state.escalations.some((e) => e.key === key)
        ? state.escalations
        : [...state.escalations, { key, replyTo: frame.replyTo ?? null, reason: frame.reason ?? null, message: frame.message }];
      // An escalation instead of an answer ends the typing indicator.
      const s = state.streams[frame.replyTo];
      const streams = s && !s.text ? omit(state.streams, frame.replyTo) : state.streams;
      const sessionStatus = state.sessionStatus === 'human' ? state.sessionStatus : 'escalated';
      return { ...state, escalations, streams, sessionStatus };
    }
    case 'done': {
      // The stored message replaces the streamed text and citations. Drop the
      // stream by the frame's replyTo too, in case the message lacks it.
      const merged = mergeMessages(state, [frame.message]);
      return { ...merged, streams: omit(merged.streams, frame.replyTo) };
    }
    case 'error': {
      const { clientMessageId } = frame;
      if (clientMessageId) return applyMessageError(state, { ...frame, clientMessageId }, now);
      const errors = addErrorNotice(state, frame, now);
      // The answer to `replyTo` failed (older edges do not say which: then any
      // answer in flight may have). Drop typing indicators and freeze partial
      // answers; a later delta or done revives/replaces them.
      const freeze = (s: StreamState): StreamState | null => (s.text ? { ...s, tool: null, interrupted: true } : null);
      const { replyTo } = frame;
      let streams: Record<string, StreamState>;
      if (replyTo) {
        const s = state.streams[replyTo];
        const frozen = s ? freeze(s) : null;
        streams = frozen ? { ...state.streams, [replyTo]: frozen } : omit(state.streams, replyTo);
      } else {
        streams = dropEmptyStreams(state.streams, freeze);
      }
      return { ...state, errors, streams };
    }
    default:
      return state;
  }
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case 'reset':
      return initialChatState;
    case 'merge_messages':
      return mergeMessages(state, action.messages);
    case 'session': {
      const status = action.status ?? 'bot';
      const handler = status === 'human' ? action.handler?.trim() || null : null;
      return status === state.sessionStatus && handler === state.handler ? state : { ...state, sessionStatus: status, handler };
    }
    case 'upload_start':
      return {
        ...state,
        uploads: [
          ...state.uploads.filter((u) => u.key !== action.key),
          { key: action.key, filename: action.filename, sizeBytes: action.sizeBytes, status: 'uploading', error: null, httpStatus: null },
        ],
      };
    case 'upload_done':
      // The stored system message now shows the file.
      return mergeMessages({ ...state, uploads: state.uploads.filter((u) => u.key !== action.key) }, [action.attachment.message]);
    case 'upload_failed':
      return {
        ...state,
        uploads: state.uploads.map((u) =>
          u.key === action.key ? { ...u, status: 'failed', error: action.message, httpStatus: action.httpStatus } : u,
        ),
      };
    case 'dismiss_upload':
      return { ...state, uploads: state.uploads.filter((u) => u.key !== action.key) };
    case 'send':
      if (
        state.pending.some((p) => p.clientMessageId === action.clientMessageId) ||
        state.rejected.some((r) => r.clientMessageId === action.clientMessageId)
      ) {
        return state;
      }
      return {
        ...state,
        pending: [...state.pending, { clientMessageId: action.clientMessageId, text: action.text, createdAt: action.now }],
      };
    case 'frame':
      return applyFrame(state, action.frame, action.now);
    case 'local_error':
      return {
        ...state,
        errors: [...state.errors, { key: action.key, code: action.code, message: action.message, anchorSeq: lastSeq(state) }],
      };
    case 'dismiss_error':
      return { ...state, errors: state.errors.filter((e) => e.key !== action.key) };
    case 'clear_errors':
      return state.errors.some((e) => e.code === action.code)
        ? { ...state, errors: state.errors.filter((e) => e.code !== action.code) }
        : state;
    case 'expire': {
      let changed = false;
      const streams = dropEmptyStreams(state.streams, (s) => {
        const idle = action.now - s.lastActivity;
        if (!s.text && idle > TYPING_EXPIRY_MS) {
          changed = true;
          return null;
        }
        if (s.text && !s.interrupted && idle > STREAM_STALL_MS) {
          changed = true;
          return { ...s, tool: null, interrupted: true };
        }
        return s;
      });
      return changed ? { ...state, streams } : state;
    }
    default:
      return state;
  }
}

/** True while some answer is expected but has not been stored yet. */
export function isAwaitingAnswer(state: ChatState): boolean {
  return state.pending.length > 0 || Object.values(state.streams).some((s) => !s.interrupted);
}

export type TimelineItem =
  | { kind: 'message'; key: string; message: Message }
  | { kind: 'pending'; key: string; pending: PendingMessage }
  | { kind: 'stream'; key: string; stream: StreamState }
  | { kind: 'escalation'; key: string; notice: EscalationNotice }
  | { kind: 'error'; key: string; notice: ErrorNotice }
  | { kind: 'rejected'; key: string; rejected: RejectedMessage }
  | { kind: 'handoff'; key: string; notice: HandoffNotice }
  | { kind: 'upload'; key: string; upload: UploadState };

/**
 * The order things are shown in: stored messages by seq; an answer being
 * streamed right after the user message it answers; escalation notices after
 * the answer (or the question, if there is no answer); errors and refused
 * user messages where they happened; hand-off notices not stored as messages
 * and uploads in progress after the stored messages; un-acked user messages last.
 */
export function buildTimeline(state: ChatState): TimelineItem[] {
  const items: TimelineItem[] = [];
  const userIds = new Set<string>();
  const replied = new Set<string>();
  const systemTexts = new Set<string>();
  for (const m of state.messages) {
    if (m.role === 'user') userIds.add(m.id);
    if (m.role === 'assistant' && m.replyTo) replied.add(m.replyTo);
    if (m.role === 'system') systemTexts.add(m.text.trim());
  }
  // An escalation that was also stored as a system message is shown once.
  const escalations = state.escalations.filter((e) => !systemTexts.has(e.message.trim()));
  const placedEsc = new Set<string>();
  const placedStreams = new Set<string>();
  const pushEscalations = (replyTo: string) => {
    for (const e of escalations) {
      if (e.replyTo === replyTo && !placedEsc.has(e.key)) {
        placedEsc.add(e.key);
        items.push({ kind: 'escalation', key: e.key, notice: e });
      }
    }
  };
  // Errors and refused messages, by anchorSeq (a stable sort keeps each list's order).
  const anchored: { anchorSeq: number; item: TimelineItem }[] = [
    ...state.errors.map((e) => ({ anchorSeq: e.anchorSeq, item: { kind: 'error', key: e.key, notice: e } as const })),
    ...state.rejected.map((r) => ({
      anchorSeq: r.anchorSeq,
      item: { kind: 'rejected', key: `u:${r.clientMessageId}`, rejected: r } as const,
    })),
  ].sort((a, b) => a.anchorSeq - b.anchorSeq);
  let anchoredIdx = 0;
  const flushErrors = (beforeSeq: number) => {
    while (anchoredIdx < anchored.length && (anchored[anchoredIdx]?.anchorSeq ?? 0) < beforeSeq) {
      const a = anchored[anchoredIdx++];
      if (a) items.push(a.item);
    }
  };

  for (const m of state.messages) {
    flushErrors(m.seq);
    items.push({ kind: 'message', key: m.clientMessageId && m.role === 'user' ? `u:${m.clientMessageId}` : `m:${m.id}`, message: m });
    if (m.role === 'user' && !replied.has(m.id)) {
      const s = state.streams[m.id];
      if (s) {
        placedStreams.add(m.id);
        items.push({ kind: 'stream', key: `s:${m.id}`, stream: s });
      }
      pushEscalations(m.id);
    } else if (m.role === 'assistant' && m.replyTo) {
      pushEscalations(m.replyTo);
    }
  }
  for (const s of Object.values(state.streams)) {
    if (!placedStreams.has(s.replyTo)) items.push({ kind: 'stream', key: `s:${s.replyTo}`, stream: s });
  }
  for (const e of escalations) {
    if (!placedEsc.has(e.key)) items.push({ kind: 'escalation', key: e.key, notice: e });
  }
  flushErrors(Number.POSITIVE_INFINITY);
  for (const h of state.handoffs) {
    if (!systemTexts.has(h.text)) items.push({ kind: 'handoff', key: h.key, notice: h });
  }
  for (const u of state.uploads) items.push({ kind: 'upload', key: u.key, upload: u });
  for (const p of state.pending) items.push({ kind: 'pending', key: `u:${p.clientMessageId}`, pending: p });
  return items;
}
