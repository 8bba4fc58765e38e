import { useId, useLayoutEffect, useRef, useState, type ChangeEvent, type FormEvent, type KeyboardEvent } from 'react';
import { ATTACHMENT_ACCEPT, lengthStatus, MAX_MESSAGE_CHARS } from '../config';

interface ComposerProps {
  disabled: boolean;
  onSend: (text: string) => boolean;
  /** Upload a file; absent when the agent takes no files. */
  onAttach?: ((file: File) => boolean) | undefined;
  /** Placeholder, e.g. while a human agent answers. */
  placeholder?: string;
}

const MAX_HEIGHT_PX = 180;
const fmt = (n: number) => n.toLocaleString('en-US');

export function Composer({ disabled, onSend, onAttach, placeholder = 'Ask a question…' }: ComposerProps) {
  const [text, setText] = useState('');
  const ref = useRef<HTMLTextAreaElement>(null);
  const fileRef = useRef<HTMLInputElement>(null);
  const counterId = useId();
  const limitId = useId();
  const { length, showCounter, tooLong } = lengthStatus(text);

  // grow with the content, up to a limit
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [text]);

  const submit = () => {
    if (disabled || !text.trim() || tooLong) return;
    if (onSend(text)) setText('');
    ref.current?.focus();
  };

  const onSubmit = (ev: FormEvent) => {
    ev.preventDefault();
    submit();
  };

  const onKeyDown = (ev: KeyboardEvent<HTMLTextAreaElement>) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.nativeEvent.isComposing) {
      ev.preventDefault();
      submit();
    }
  };

  const onFile = (ev: ChangeEvent<HTMLInputElement>) => {
    const file = ev.target.files?.[0];
    // Cleared, so choosing the same file again (after a refusal) fires again.
    ev.target.value = '';
    if (file && onAttach) onAttach(file);
  };

  const canSend = !disabled && text.trim() !== '' && !tooLong;
  const describedBy = [showCounter && counterId, tooLong && limitId].filter(Boolean).join(' ') || undefined;
  return (
    <footer className="composer">
      <form className="composer__inner" onSubmit={onSubmit} aria-label="Send a message">
        {onAttach && (
          <>
            <input
              ref={fileRef}
              type="file"
              className="visually-hidden"
              accept={ATTACHMENT_ACCEPT}
              onChange={onFile}
              tabIndex={-1}
              aria-hidden="true"
              data-testid="attach-input"
            />
            <button
              type="button"
              className="attach-button"
              data-testid="attach-button"
              aria-label="Attach a file"
              title="Attach a file (PDF, Word, PowerPoint, Excel, CSV, JSON, Markdown, text or HTML)"
              disabled={disabled}
              onClick={() => fileRef.current?.click()}
            >
              <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
                <path
                  d="m20 11.5-7.8 7.8a5 5 0 0 1-7.1-7.1l8.2-8.2a3.3 3.3 0 0 1 4.7 4.7l-8.2 8.2a1.7 1.7 0 0 1-2.4-2.4l7.6-7.6"
                  fill="none"
                  stroke="currentColor"
                  strokeWidth="1.9"
                  strokeLinecap="round"
                  strokeLinejoin="round"
                />
              </svg>
            </button>
          </>
        )}
        <textarea
          ref={ref}
          className="composer__input"
          data-testid="chat-input"
          aria-label="Message"
          placeholder={placeholder}
          rows={1}
          value={text}
          onChange={(ev) => setText(ev.target.value)}
          onKeyDown={onKeyDown}
          aria-invalid={tooLong || undefined}
          aria-describedby={describedBy}
          autoFocus
        />
        {showCounter && (
          <span
            id={counterId}
            className={`composer__counter${tooLong ? ' composer__counter--over' : ''}`}
            data-testid="char-counter"
            data-over={tooLong ? 'true' : 'false'}
          >
            <span aria-hidden="true">
              {fmt(length)}/{fmt(MAX_MESSAGE_CHARS)}
            </span>
            <span className="visually-hidden">
              {fmt(length)} of {fmt(MAX_MESSAGE_CHARS)} characters
            </span>
          </span>
        )}
        <button
          type="submit"
          className="send-button"
          data-testid="send-button"
          aria-label="Send message"
          title={tooLong ? 'Message too long' : 'Send'}
          disabled={!canSend}
        >
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path
              d="M4.5 12h13M12.5 6.5 18 12l-5.5 5.5"
              fill="none"
              stroke="currentColor"
              strokeWidth="2.2"
              strokeLinecap="round"
              strokeLinejoin="round"
            />
          </svg>
        </button>
      </form>
      {/* Announced once when the limit is crossed; the count itself is not live. */}
      <p className="composer__limit" id={limitId} data-testid="length-error" role="status">
        {tooLong && `Too long to send: messages can have at most ${fmt(MAX_MESSAGE_CHARS)} characters.`}
      </p>
      <p className="composer__hint">Enter to send · Shift+Enter for a new line</p>
    </footer>
  );
}
