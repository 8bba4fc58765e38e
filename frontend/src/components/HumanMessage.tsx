import { formatTime } from './AssistantMessage';

interface HumanMessageProps {
  author: string;
  text: string;
  createdAt?: string | null;
}

function initials(name: string): string {
  const words = name.split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? (words[0]?.[0] ?? '') + (words[1]?.[0] ?? '') : name.slice(0, 2);
  return letters.toUpperCase() || '?';
}

/** A reply written by a human support agent: their name above it, styled apart from the bot's answers. */
export function HumanMessage({ author, text, createdAt }: HumanMessageProps) {
  const name = author.trim() || 'Support agent';
  const time = formatTime(createdAt);
  return (
    <div className="row row--assistant row--human">
      <div className="avatar avatar--human" aria-hidden="true">
        {initials(name)}
      </div>
      <div className="stack">
        <p className="author" data-testid="human-author">
          {name} <span className="author__role">· Support team</span>
        </p>
        <article className="bubble bubble--human" data-testid="message-human" aria-label={`Message from ${name}`}>
          <div className="answer">
            <p>{text}</p>
          </div>
        </article>
        {time && <p className="meta">{time}</p>}
      </div>
    </div>
  );
}
