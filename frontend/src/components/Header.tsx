import type { ConnectionStatus } from '../chatSocket';
import type { Agent, SessionStatus } from '../types';

interface HeaderProps {
  agent: Agent | null;
  status: ConnectionStatus;
  ready: boolean;
  /** Loading the chat failed or the edge refused the connection. */
  failed?: boolean;
  /** Who answers the conversation, and the human agent's name when one does. */
  sessionStatus?: SessionStatus;
  handler?: string | null;
  onNewConversation: () => void;
}

/** What the header says about who answers, or null while the bot does. */
export function handlerText(status: SessionStatus, handler: string | null | undefined): string | null {
  if (status === 'human') return `${handler || 'A support agent'} from the support team is chatting with you`;
  if (status === 'escalated') return 'Waiting for a support agent to join…';
  return null;
}

function initials(name: string): string {
  const words = name.split(/[\s_-]+/).filter(Boolean);
  const letters = words.length > 1 ? (words[0]?.[0] ?? '') + (words[1]?.[0] ?? '') : name.slice(0, 2);
  return letters.toUpperCase() || '?';
}

const STATUS_TEXT: Record<ConnectionStatus, string> = {
  connecting: 'Connecting…',
  open: 'Online',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
};

export function Header({
  agent,
  status,
  ready,
  failed = false,
  sessionStatus = 'bot',
  handler = null,
  onNewConversation,
}: HeaderProps) {
  const name = agent ? agent.displayName || agent.name : '';
  const who = ready ? handlerText(sessionStatus, handler) : null;
  const shownStatus: ConnectionStatus = ready ? status : failed ? 'closed' : 'connecting';
  return (
    <header className="header">
      <div className="header__inner">
        <div className="avatar avatar--lg" aria-hidden="true">
          {name ? initials(name) : ''}
        </div>
        <div className="header__title">
          {agent ? (
            <h1 className="header__name" data-testid="agent-name">
              {name}
            </h1>
          ) : (
            <h1 className="header__name header__name--placeholder">Support</h1>
          )}
          <p className="header__status" data-testid="connection-status" data-status={shownStatus} aria-live="polite">
            <span className={`status-dot status-dot--${shownStatus}`} aria-hidden="true" />
            {STATUS_TEXT[shownStatus]}
          </p>
          {who && (
            <p className={`header__handler header__handler--${sessionStatus}`} data-testid="handler-status" aria-live="polite">
              {who}
            </p>
          )}
        </div>
        <button
          type="button"
          className="button button--ghost"
          onClick={onNewConversation}
          disabled={!agent}
          aria-label="Start a new conversation"
          title="Start a new conversation"
          data-testid="new-conversation"
        >
          <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
            <path
              d="M12 5v14M5 12h14"
              fill="none"
              stroke="currentColor"
              strokeWidth="2"
              strokeLinecap="round"
            />
          </svg>
          <span className="button__label">New chat</span>
        </button>
      </div>
    </header>
  );
}
