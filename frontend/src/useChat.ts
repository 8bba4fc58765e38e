// The chat's I/O: picks the agent, restores or creates the session, loads
// history, keeps the WebSocket up and feeds everything into chatReducer.

import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { ApiClient, ApiError } from './api';
import { chatReducer, initialChatState, lastSeq, type ChatState, type PendingMessage } from './chatState';
import {
  afterGiveUp,
  ChatSocket,
  CLOSE_TRY_AGAIN_LATER,
  type CloseAction,
  type ConnectionStatus,
} from './chatSocket';
import {
  MAX_MESSAGE_CHARS,
  messageLength,
  newClientMessageId,
  sessionStorageKey,
  streamUrl,
  type PageParams,
} from './config';
import type { Agent, Session } from './types';

export type Phase = { kind: 'loading' } | { kind: 'ready' } | { kind: 'failed'; message: string };

/** Un-acked messages are sent again after this long on an open socket. */
const RESEND_AFTER_MS = 10_000;
/** With an answer in flight and no frame for this long, poll for stored messages. */
const QUIET_POLL_MS = 5_000;
const TICK_MS = 2_000;
export const SESSION_REPLACED_MESSAGE = 'This conversation is no longer available, so a new one was started.';

function storageGet(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function storageSet(key: string, value: string | null): void {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch {
    // storage unavailable (private mode etc.): the session lasts for this page only
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiError) return err.message || `Request failed (${err.status}).`;
  if (err instanceof TypeError) return 'Could not reach the support service. Check your connection.';
  if (err instanceof Error) return err.message;
  return 'Something went wrong.';
}

/** A stored session id the edge rejects outright is useless: start a new session. */
function isStaleSession(err: unknown): boolean {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 401 && err.status !== 429;
}

export interface ChatApi {
  phase: Phase;
  agent: Agent | null;
  sessionId: string | null;
  status: ConnectionStatus;
  state: ChatState;
  send: (text: string) => boolean;
  /** Upload a file to the conversation; false when the chat is not ready or the agent takes no files. */
  attach: (file: File) => boolean;
  dismissUpload: (key: string) => void;
  retry: () => void;
  newConversation: () => void;
  dismissError: (key: string) => void;
}

export function useChat(params: PageParams): ChatApi {
  const api = useMemo(() => new ApiClient(params.tenant), [params.tenant]);
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' });
  const [agent, setAgent] = useState<Agent | null>(null);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [bootCount, setBootCount] = useState(0);
  const [state, dispatch] = useReducer(chatReducer, initialChatState);

  const stateRef = useRef(state);
  stateRef.current = state;
  const socketRef = useRef<ChatSocket | null>(null);
  const sentAtRef = useRef(new Map<string, number>());
  const lastFrameAtRef = useRef(0);
  /** localStorage key of the current session id. */
  const sessionKeyRef = useRef<string | null>(null);
  /** Un-acked messages to send in the session that replaces a vanished one. */
  const carryRef = useRef<PendingMessage[] | null>(null);
  const replacedAtRef = useRef(0);

  // --- bootstrap: agent -> session -> history ---------------------------
  useEffect(() => {
    const ctrl = new AbortController();
    const { signal } = ctrl;
    setPhase({ kind: 'loading' });
    setSessionId(null);
    dispatch({ type: 'reset' });
    sentAtRef.current.clear();
    const carried = carryRef.current;
    for (const p of carried ?? []) {
      dispatch({ type: 'send', clientMessageId: p.clientMessageId, text: p.text, now: p.createdAt });
    }

    (async () => {
      const agents = await api.listAgents(signal);
      const chosen = params.agent ? agents.find((a) => a.name === params.agent) : agents[0];
      if (!chosen) {
        throw new Error(
          params.agent ? `The support agent "${params.agent}" was not found.` : 'No support agent is available right now.',
        );
      }
      setAgent(chosen);

      const key = sessionStorageKey(params.tenant, chosen.name);
      sessionKeyRef.current = key;
      const storedId = storageGet(key);
      let session: Session | null = null;
      if (storedId) {
        try {
          session = await api.getSession(storedId, signal);
        } catch (err) {
          if (!isStaleSession(err)) throw err;
        }
        if (session && session.agent && session.agent !== chosen.name) session = null;
      }
      if (!session) {
        session = await api.createSession(chosen.name, signal);
        storageSet(key, session.id);
      }
      const history = await api.listMessagesAfter(session.id, 0, signal);
      if (signal.aborted) return;
      dispatch({ type: 'merge_messages', messages: history });
      dispatch({ type: 'session', status: session.status, handler: session.handler });
      if (carried) {
        carryRef.current = null;
        dispatch({ type: 'local_error', code: 'session_replaced', message: SESSION_REPLACED_MESSAGE, key: `replaced:${Date.now()}` });
      }
      setSessionId(session.id);
      setPhase({ kind: 'ready' });
    })().catch((err: unknown) => {
      if (signal.aborted) return;
      setPhase({ kind: 'failed', message: describe(err) });
    });

    return () => ctrl.abort();
  }, [api, params.agent, params.tenant, bootCount]);

  // --- WebSocket ----------------------------------------------------------
  useEffect(() => {
    if (!sessionId) return;
    let disposed = false;
    let refetching = false;
    let refetchAgain = false;
    let fetchedSeq = 0;
    /** The last error frame not about one message or answer: the reason a close follows. */
    let socketError: { code: string | null; message: string } | null = null;

    const refetch = async (): Promise<void> => {
      if (refetching) {
        refetchAgain = true;
        return;
      }
      refetching = true;
      try {
        do {
          refetchAgain = false;
          const after = Math.max(lastSeq(stateRef.current), fetchedSeq);
          const items = await api.listMessagesAfter(sessionId, after);
          if (disposed) return;
          for (const m of items) fetchedSeq = Math.max(fetchedSeq, m.seq);
          dispatch({ type: 'merge_messages', messages: items });
        } while (refetchAgain && !disposed);
      } catch {
        // transient; the next reconnect or tick tries again
      } finally {
        refetching = false;
      }
    };

    const resendPending = (sock: ChatSocket, olderThan: number) => {
      const now = Date.now();
      for (const p of stateRef.current.pending) {
        const sentAt = sentAtRef.current.get(p.clientMessageId) ?? 0;
        if (now - sentAt < olderThan) continue;
        if (sock.send({ type: 'user_message', clientMessageId: p.clientMessageId, text: p.text })) {
          sentAtRef.current.set(p.clientMessageId, now);
        }
      }
    };

    function onGiveUp(reason: CloseAction, closeReason: string): void {
      if (disposed) return;
      const now = Date.now();
      if (afterGiveUp(reason, now, replacedAtRef.current) === 'new_session') {
        // Gone (expired, deleted, other tenant): start a new session and send
        // the un-acked messages there.
        replacedAtRef.current = now;
        carryRef.current = stateRef.current.pending;
        if (sessionKeyRef.current) storageSet(sessionKeyRef.current, null);
        setBootCount((n) => n + 1);
        return;
      }
      // The error frame before the close says why; show it once, in the banner.
      dispatch({ type: 'clear_errors', code: reason === 'session_not_found' ? 'not_found' : 'bad_request' });
      setPhase({
        kind: 'failed',
        message:
          socketError?.message ||
          closeReason ||
          (reason === 'session_not_found'
            ? 'This conversation could not be found.'
            : 'The support service refused the connection.'),
      });
    }

    const sock = new ChatSocket({
      url: streamUrl(window.location, sessionId, params.tenant),
      onStatus: (s) => {
        if (!disposed) setStatus(s);
      },
      onGiveUp: (reason, _code, closeReason) => onGiveUp(reason, closeReason),
      onRetry: (code) => {
        // "Try again later": the header shows "Reconnecting…"; the error frame
        // sent before the close need not stay on screen.
        if (code === CLOSE_TRY_AGAIN_LATER && socketError?.code) dispatch({ type: 'clear_errors', code: socketError.code });
      },
      onOpen: () => {
        socketError = null;
        // Messages typed while offline or never acked: send again with the
        // same clientMessageId (the edge dedupes), then catch up on anything
        // stored while we were away.
        resendPending(sock, 0);
        void refetch();
        // Who answers may have changed while we were away (a human joined or left).
        api.getSession(sessionId).then(
          (session) => {
            if (!disposed) dispatch({ type: 'session', status: session.status, handler: session.handler });
          },
          () => {},
        );
      },
      onFrame: (frame) => {
        lastFrameAtRef.current = Date.now();
        if (frame.type === 'error' && !frame.replyTo && !frame.clientMessageId) {
          socketError = { code: frame.code ?? null, message: frame.message };
        }
        dispatch({ type: 'frame', frame, now: lastFrameAtRef.current });
      },
    });
    socketRef.current = sock;
    sock.start();

    const tick = setInterval(() => {
      const now = Date.now();
      dispatch({ type: 'expire', now });
      if (!sock.isOpen) return;
      resendPending(sock, RESEND_AFTER_MS);
      const s = stateRef.current;
      const waiting = Object.values(s.streams).some((st) => !st.interrupted) || s.pending.length > 0;
      if (waiting && now - lastFrameAtRef.current > QUIET_POLL_MS) void refetch();
    }, TICK_MS);

    return () => {
      disposed = true;
      clearInterval(tick);
      sock.stop();
      if (socketRef.current === sock) socketRef.current = null;
    };
  }, [api, sessionId, params.tenant]);

  // --- actions ------------------------------------------------------------
  const send = useCallback(
    (text: string): boolean => {
      const trimmed = text.trim();
      if (!trimmed || !sessionId || messageLength(trimmed) > MAX_MESSAGE_CHARS) return false;
      const clientMessageId = newClientMessageId();
      dispatch({ type: 'send', clientMessageId, text: trimmed, now: Date.now() });
      const sock = socketRef.current;
      if (sock?.send({ type: 'user_message', clientMessageId, text: trimmed })) {
        sentAtRef.current.set(clientMessageId, Date.now());
      }
      return true;
    },
    [sessionId],
  );

  const attachmentsEnabled = agent?.attachmentsEnabled !== false;
  const attach = useCallback(
    (file: File): boolean => {
      if (!sessionId || !attachmentsEnabled) return false;
      const key = `up:${newClientMessageId()}`;
      dispatch({ type: 'upload_start', key, filename: file.name, sizeBytes: file.size });
      api.uploadAttachment(sessionId, file, file.name).then(
        (attachment) => dispatch({ type: 'upload_done', key, attachment }),
        (err: unknown) =>
          dispatch({
            type: 'upload_failed',
            key,
            message: describe(err),
            httpStatus: err instanceof ApiError ? err.status : null,
          }),
      );
      return true;
    },
    [api, sessionId, attachmentsEnabled],
  );

  const dismissUpload = useCallback((key: string) => dispatch({ type: 'dismiss_upload', key }), []);

  const retry = useCallback(() => setBootCount((n) => n + 1), []);

  const newConversation = useCallback(() => {
    if (agent) storageSet(sessionStorageKey(params.tenant, agent.name), null);
    setBootCount((n) => n + 1);
  }, [agent, params.tenant]);

  const dismissError = useCallback((key: string) => dispatch({ type: 'dismiss_error', key }), []);

  return { phase, agent, sessionId, status, state, send, attach, dismissUpload, retry, newConversation, dismissError };
}
