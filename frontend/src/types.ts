// Wire types of the Concierge edge API (JSON is camelCase).

export type Role = 'user' | 'assistant' | 'system';

export interface Citation {
  index: number;
  knowledgeBase?: string | null;
  documentId?: string | null;
  documentTitle?: string | null;
  sourceUri?: string | null;
  section?: string | null;
  snippet?: string | null;
  chunkId?: string | null;
  score?: number | null;
}

export interface Message {
  id: string;
  sessionId: string;
  role: Role;
  text: string;
  clientMessageId?: string | null;
  seq: number;
  createdAt: string;
  citations?: Citation[] | null;
  replyTo?: string | null;
}

export interface Agent {
  name: string;
  namespace?: string;
  displayName?: string | null;
  greeting?: string | null;
}

export interface Session {
  id: string;
  agent: string;
  tenant: string;
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  nextAfter?: number | null;
}

/** Client -> server frame. */
export interface UserMessageFrame {
  type: 'user_message';
  clientMessageId: string;
  text: string;
}

/** Server -> client frames. */
export type ServerFrame =
  | { type: 'ack'; message: Message; created: boolean }
  /**
   * `offset`: characters (Unicode code points) of this answer's text before
   * this delta. A socket that (re)joins mid-answer gets the answer's frames
   * again from the start. Older edges send no offset.
   */
  | { type: 'text_delta'; replyTo: string; text: string; offset?: number | null }
  | { type: 'tool_call'; replyTo: string; name: string; finished: boolean }
  | { type: 'citation'; replyTo: string; citation: Citation }
  | { type: 'escalation'; replyTo: string; reason?: string | null; message: string }
  | { type: 'done'; replyTo: string; message: Message }
  /**
   * `replyTo`: the answer to this user message failed. `clientMessageId`: the
   * `user_message` frame with this id was not stored; `retryable: false` means
   * sending it again can never work (e.g. `invalid_message`).
   */
  | {
      type: 'error';
      code?: string | null;
      message: string;
      replyTo?: string | null;
      clientMessageId?: string | null;
      retryable?: boolean | null;
    };
