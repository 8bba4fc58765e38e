import { useMemo, type MouseEvent } from 'react';
import { parseAnswer } from '../answerText';
import type { Citation } from '../types';

interface AssistantMessageProps {
  /** Stable id used to link [n] markers to this answer's sources. */
  anchorId: string;
  text: string;
  citations: Citation[];
  /** Not the stored message yet: still streaming, or interrupted. */
  streaming: boolean;
  /** The stream stopped without a final message. Still data-streaming="true". */
  interrupted?: boolean;
  tool?: string | null;
  createdAt?: string | null;
}

function sourceId(anchorId: string, index: number): string {
  return `src-${anchorId}-${index}`;
}

function citationLabel(c: Citation): string {
  const title = c.documentTitle?.trim() || c.documentId || c.sourceUri || 'Source';
  const section = c.section?.trim();
  return section ? `${title} — ${section}` : title;
}

function isWebLink(uri: string | null | undefined): uri is string {
  return !!uri && /^https?:\/\//i.test(uri);
}

function openSource(ev: MouseEvent<HTMLAnchorElement>, id: string) {
  const el = document.getElementById(id);
  if (!el) return;
  ev.preventDefault();
  const details = el.querySelector('details');
  if (details) details.open = true;
  el.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  el.classList.remove('source--flash');
  // restart the highlight animation
  void el.offsetWidth;
  el.classList.add('source--flash');
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
}

interface AnswerTextProps {
  anchorId: string;
  text: string;
  citations: Citation[];
  /** Show a blinking caret after the last word (streaming). */
  caret?: boolean;
}

export function AnswerText({ anchorId, text, citations, caret = false }: AnswerTextProps) {
  const byIndex = useMemo(() => new Map(citations.map((c) => [c.index, c] as const)), [citations]);
  const paragraphs = useMemo(() => parseAnswer(text, new Set(byIndex.keys())), [text, byIndex]);
  return (
    <div className="answer" data-testid="answer-text">
      {paragraphs.map((para, pi) => (
        <p key={pi}>
          {para.map((seg, si) =>
            seg.type === 'text' ? (
              <span key={si}>{seg.text}</span>
            ) : (
              <sup key={si} className="cite-ref">
                [
                {seg.indexes.map((n, ni) => {
                  const c = byIndex.get(n);
                  const id = sourceId(anchorId, n);
                  return (
                    <span key={n}>
                      {ni > 0 && ', '}
                      <a href={`#${id}`} onClick={(ev) => openSource(ev, id)} aria-label={`Source ${n}${c ? `: ${citationLabel(c)}` : ''}`}>
                        {n}
                      </a>
                    </span>
                  );
                })}
                ]
              </sup>
            ),
          )}
          {caret && pi === paragraphs.length - 1 && <span className="caret" aria-hidden="true" />}
        </p>
      ))}
    </div>
  );
}

export function Sources({ anchorId, citations }: { anchorId: string; citations: Citation[] }) {
  if (citations.length === 0) return null;
  return (
    <section className="sources" aria-label="Sources">
      <h2 className="sources__title">Sources</h2>
      <ol className="sources__list">
        {citations.map((c) => {
          const label = `[${c.index}] ${citationLabel(c)}`;
          const snippet = c.snippet?.trim() ?? '';
          return (
            <li key={c.index} id={sourceId(anchorId, c.index)} className="source" data-testid="citation" data-index={c.index}>
              {snippet || isWebLink(c.sourceUri) ? (
                <details>
                  <summary title={snippet || undefined} data-testid="citation-label">
                    {label}
                  </summary>
                  <div className="source__body">
                    {snippet && <blockquote className="source__snippet">{snippet}</blockquote>}
                    {isWebLink(c.sourceUri) && (
                      <a
                        className="source__link"
                        href={c.sourceUri}
                        target="_blank"
                        rel="noopener noreferrer"
                        aria-label={`Open article: ${citationLabel(c)} (opens in a new tab)`}
                      >
                        Open article
                      </a>
                    )}
                  </div>
                </details>
              ) : (
                <span className="source__plain" data-testid="citation-label">
                  {label}
                </span>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

export function AssistantMessage({
  anchorId,
  text,
  citations,
  streaming,
  interrupted = false,
  tool,
  createdAt,
}: AssistantMessageProps) {
  const time = formatTime(createdAt);
  const live = streaming && !interrupted;
  return (
    <div className="row row--assistant">
      <div className="avatar" aria-hidden="true">
        <BotGlyph />
      </div>
      <div className="stack">
        <article
          className={`bubble bubble--assistant${live ? ' bubble--streaming' : ''}`}
          data-testid="message-assistant"
          data-streaming={streaming ? 'true' : 'false'}
          data-interrupted={interrupted ? 'true' : undefined}
          aria-busy={live}
          aria-label="Assistant message"
        >
          <AnswerText anchorId={anchorId} text={text} citations={citations} caret={live && !tool} />
          {tool && <ToolIndicator />}
          <Sources anchorId={anchorId} citations={citations} />
        </article>
        {interrupted ? (
          <p className="meta meta--warn">This answer was interrupted.</p>
        ) : (
          time && <p className="meta">{time}</p>
        )}
      </div>
    </div>
  );
}

export function ToolIndicator() {
  return (
    <p className="tool" data-testid="tool-indicator" role="status">
      <span className="spinner" aria-hidden="true" />
      Searching the help center…
    </p>
  );
}

export function TypingIndicator({ tool }: { tool: string | null }) {
  return (
    <div className="row row--assistant">
      <div className="avatar" aria-hidden="true">
        <BotGlyph />
      </div>
      <div className="bubble bubble--assistant bubble--typing" data-testid="typing-indicator" aria-label="Assistant is typing">
        {tool ? (
          <ToolIndicator />
        ) : (
          <span className="dots" aria-hidden="true">
            <span />
            <span />
            <span />
          </span>
        )}
      </div>
    </div>
  );
}

export function BotGlyph() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
      <rect x="4" y="7" width="16" height="12" rx="4" fill="none" stroke="currentColor" strokeWidth="1.8" />
      <path d="M12 3.5V7" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
      <circle cx="9.5" cy="13" r="1.3" fill="currentColor" />
      <circle cx="14.5" cy="13" r="1.3" fill="currentColor" />
    </svg>
  );
}
