import { useId, useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { lengthStatus, MAX_MESSAGE_CHARS } from '../config';

interface ComposerProps {
  disabled: boolean;
  onSend: (text: string) => boolean;
}

const MAX_HEIGHT_PX = 180;
const fmt = (n: number) => n.toLocaleString('en-US');

export function Composer({ disabled, onSend }: ComposerProps) {
  const [text, setText] = useState('');
  const ref = useRef<HTMLTextAreaElement>(null);
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

  const canSend = !disabled && text.trim() !== '' && !tooLong;
  const describedBy = [showCounter && counterId, tooLong && limitId].filter(Boolean).join(' ') || undefined;
  return (
    <footer className="composer">
      <form className="composer__inner" onSubmit={onSubmit} aria-label="Send a message">
        <textarea
          ref={ref}
          className="composer__input"
          data-testid="chat-input"
          aria-label="Message"
          placeholder="Ask a question…"
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
