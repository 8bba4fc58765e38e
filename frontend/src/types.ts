// Wire types of the Concierge edge API (JSON is camelCase).

/** `human`: a human support agent (see `author`); `system`: notes such as "Ana joined the conversation". */
export type Role = 'user' | 'assistant' | 'system' | 'human';

/** Who answers the session: the bot, nobody yet (waiting for a human), or a human agent. */
export type SessionStatus = 'bot' | 'escalated' | 'human';

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
  /** Display name of the human agent (role `human`). */
  author?: string | null;
}

export interface Agent {
  name: string;
  namespace?: string;
  displayName?: string | null;
  greeting?: string | null;
  /** Whether customers may upload files (older edges do not say: assume yes). */
  attachmentsEnabled?: boolean | null;
  attachmentsMaxBytes?: number | null;
}

export interface Session {
  id: string;
  agent: string;
  tenant: string;
  createdAt: string;
  customerId?: string | null;
  status?: SessionStatus | null;
  /** Display name of the human agent holding the session (status `human`). */
  handler?: string | null;
}

/** A file the customer attached (201 of POST /sessions/{id}/attachments). */
export interface Attachment {
  id: string;
  sessionId: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  format: string;
  chars: number;
  pages?: number | null;
  truncated: boolean;
  createdAt: string;
  /** The system message announcing the file in the conversation. */
  message: Message;
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
  /** `sessionStatus` other than `bot`: no answer from the bot follows (a human answers). */
  | { type: 'ack'; message: Message; created: boolean; sessionStatus?: SessionStatus | null }
  /** A stored message from someone else on the session (a human agent's reply, an attachment note, …). */
  | { type: 'message'; message: Message }
  /** A human agent took over (`human_joined`) or handed back to the bot (`human_left`). */
  | { type: 'human_joined'; name: string; message?: Message | null }
  | { type: 'human_left'; name: string; message?: Message | null }
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
