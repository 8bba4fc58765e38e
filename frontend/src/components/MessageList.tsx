import { useLayoutEffect, useRef } from 'react';
import { systemNote, type TimelineItem } from '../chatState';
import type { Message } from '../types';
import { AnswerText, AssistantMessage, BotGlyph, formatTime, TypingIndicator } from './AssistantMessage';
import { AttachmentChip, UploadChip } from './Attachments';
import { HumanMessage } from './HumanMessage';
import { ErrorBanner, EscalationBanner, HandoffLine } from './Notices';

interface MessageListProps {
  greeting: string | null;
  items: TimelineItem[];
  loading: boolean;
  onDismissError: (key: string) => void;
  onDismissUpload: (key: string) => void;
  /** Changes whenever the user sends: always scroll to the bottom then. */
  sendCount: number;
}

interface UserBubbleProps {
  text: string;
  status: 'sending' | 'sent' | 'failed';
  createdAt?: string;
  /** sending: the last retryable error (it is sent again); failed: why it was refused. */
  error?: string | null;
}

function UserBubble({ text, status, createdAt, error }: UserBubbleProps) {
  let meta: string;
  if (status === 'failed') meta = `Not sent: ${error ?? 'the message was refused.'}`;
  else if (status === 'sending') meta = error ? `Not sent yet (${error}). Retrying…` : 'Sending…';
  else meta = formatTime(createdAt);
  return (
    <div className="row row--user">
      <div className="stack stack--end">
        <div
          className={`bubble bubble--user${status === 'sending' ? ' bubble--sending' : ''}${status === 'failed' ? ' bubble--failed' : ''}`}
          data-testid="message-user"
          data-status={status}
          aria-label={status === 'failed' ? 'Your message, not sent' : 'Your message'}
        >
          {text}
        </div>
        <p
          className={`meta${status === 'failed' ? ' meta--error' : ''}`}
          data-testid={status === 'failed' ? 'send-error' : undefined}
          aria-live="polite"
        >
          {meta}
        </p>
      </div>
    </div>
  );
}

function SystemLine({ message }: { message: Message }) {
  const note = systemNote(message);
  if (note.kind === 'joined' || note.kind === 'left') return <HandoffLine kind={note.kind} text={note.text} />;
  if (note.kind === 'attachment') return <AttachmentChip filename={note.filename} title={note.text} />;
  return (
    <p className="system-line" data-testid="message-system">
      {message.text}
    </p>
  );
}

interface Handlers {
  onDismissError: (key: string) => void;
  onDismissUpload: (key: string) => void;
}

function renderItem(item: TimelineItem, { onDismissError, onDismissUpload }: Handlers) {
  switch (item.kind) {
    case 'message': {
      const m = item.message;
      if (m.role === 'user') return <UserBubble key={item.key} text={m.text} status="sent" createdAt={m.createdAt} />;
      if (m.role === 'system') return <SystemLine key={item.key} message={m} />;
      if (m.role === 'human') return <HumanMessage key={item.key} author={m.author ?? ''} text={m.text} createdAt={m.createdAt} />;
      return (
        <AssistantMessage
          key={m.replyTo ? `a:${m.replyTo}` : item.key}
          anchorId={m.id}
          text={m.text}
          citations={m.citations ?? []}
          streaming={false}
          createdAt={m.createdAt}
        />
      );
    }
    case 'pending':
      return <UserBubble key={item.key} text={item.pending.text} status="sending" error={item.pending.lastError} />;
    case 'rejected':
      return <UserBubble key={item.key} text={item.rejected.text} status="failed" error={item.rejected.message} />;
    case 'stream': {
      const s = item.stream;
      if (!s.text) {
        if (s.interrupted) return null;
        return <TypingIndicator key={`t:${s.replyTo}`} tool={s.tool} />;
      }
      return (
        <AssistantMessage
          key={`a:${s.replyTo}`}
          anchorId={`stream-${s.replyTo}`}
          text={s.text}
          citations={s.citations}
          streaming={true}
          interrupted={s.interrupted}
          tool={s.tool}
        />
      );
    }
    case 'escalation':
      return <EscalationBanner key={item.key} notice={item.notice} />;
    case 'handoff':
      return <HandoffLine key={item.key} kind={item.notice.kind} text={item.notice.text} />;
    case 'upload':
      return <UploadChip key={item.key} upload={item.upload} onDismiss={() => onDismissUpload(item.upload.key)} />;
    case 'error':
      return (
        <ErrorBanner
          key={item.key}
          message={item.notice.message}
          code={item.notice.code}
          onDismiss={() => onDismissError(item.notice.key)}
        />
      );
    default:
      return null;
  }
}

export function MessageList({ greeting, items, loading, onDismissError, onDismissUpload, sendCount }: MessageListProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const stickRef = useRef(true);

  const onScroll = () => {
    const el = scrollRef.current;
    if (!el) return;
    stickRef.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };

  useLayoutEffect(() => {
    stickRef.current = true;
  }, [sendCount]);

  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (el && stickRef.current) el.scrollTop = el.scrollHeight;
  });

  return (
    <div className="messages" ref={scrollRef} onScroll={onScroll}>
      <div className="messages__inner" role="log" aria-label="Conversation" aria-live="polite" aria-relevant="additions">
        {greeting && (
          <div className="row row--assistant">
            <div className="avatar" aria-hidden="true">
              <BotGlyph />
            </div>
            <div className="bubble bubble--assistant" data-testid="greeting">
              <AnswerText anchorId="greeting" text={greeting} citations={[]} />
            </div>
          </div>
        )}
        {loading && (
          <div className="loading" data-testid="loading" role="status">
            <span className="spinner" aria-hidden="true" />
            Loading conversation…
          </div>
        )}
        {items.map((item) => renderItem(item, { onDismissError, onDismissUpload }))}
      </div>
    </div>
  );
}
