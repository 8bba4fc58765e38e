import type { EscalationNotice } from '../chatState';

export function EscalationBanner({ notice }: { notice: EscalationNotice }) {
  return (
    <div className="notice notice--escalation" role="status" data-testid="escalation-notice" data-reason={notice.reason ?? ''}>
      <svg className="notice__icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
        <path
          d="M16 11a4 4 0 1 0-8 0v3H6a2 2 0 0 1-2-2v-1a8 8 0 1 1 16 0v1a2 2 0 0 1-2 2h-2v-3Z M8 18c1 1.5 2.5 2 4 2"
          fill="none"
          stroke="currentColor"
          strokeWidth="1.8"
          strokeLinecap="round"
          strokeLinejoin="round"
        />
      </svg>
      <p className="notice__text">{notice.message}</p>
    </div>
  );
}

interface ErrorBannerProps {
  message: string;
  code?: string | null;
  onDismiss?: () => void;
  onRetry?: () => void;
}

export function ErrorBanner({ message, code, onDismiss, onRetry }: ErrorBannerProps) {
  return (
    <div className="notice notice--error" role="alert" data-testid="error-notice" data-code={code ?? ''}>
      <svg className="notice__icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
        <circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" strokeWidth="1.8" />
        <path d="M12 7.5v5.5M12 16.2v.3" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
      </svg>
      <p className="notice__text">{message}</p>
      {onRetry && (
        <button type="button" className="button button--small" onClick={onRetry} aria-label="Try again">
          Try again
        </button>
      )}
      {onDismiss && (
        <button type="button" className="icon-button" onClick={onDismiss} aria-label="Dismiss error" title="Dismiss">
          <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
            <path d="M6 6l12 12M18 6L6 18" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
      )}
    </div>
  );
}

/** "Ana joined the conversation" / "Ana left; the assistant is back". */
export function HandoffLine({ kind, text }: { kind: 'joined' | 'left'; text: string }) {
  return (
    <p className={`handoff-line handoff-line--${kind}`} role="status" data-testid="handoff-notice" data-kind={kind}>
      <span className="handoff-line__dot" aria-hidden="true" />
      {text}
    </p>
  );
}
