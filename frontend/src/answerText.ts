// Splits an answer into paragraphs and citation markers like [1] or [1, 2].

export type Segment = { type: 'text'; text: string } | { type: 'cite'; indexes: number[]; raw: string };
export type Paragraph = Segment[];

const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

export function parseParagraph(text: string, known: ReadonlySet<number>): Paragraph {
  const out: Segment[] = [];
  let last = 0;
  const pushText = (t: string) => {
    if (!t) return;
    const prev = out[out.length - 1];
    if (prev && prev.type === 'text') prev.text += t;
    else out.push({ type: 'text', text: t });
  };
  for (const m of text.matchAll(MARKER)) {
    const start = m.index ?? 0;
    const indexes = (m[1] ?? '').split(',').map((s) => Number.parseInt(s.trim(), 10));
    pushText(text.slice(last, start));
    // Only markers that point at a known citation become links.
    if (indexes.length > 0 && indexes.every((i) => known.has(i))) out.push({ type: 'cite', indexes, raw: m[0] });
    else pushText(m[0]);
    last = start + m[0].length;
  }
  pushText(text.slice(last));
  return out;
}

/** Paragraphs are separated by blank lines; single newlines stay line breaks. */
export function parseAnswer(text: string, known: ReadonlySet<number>): Paragraph[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n+/)
    .map((p) => p.replace(/^\n+|\n+$/g, ''))
    .filter((p) => p.trim() !== '')
    .map((p) => parseParagraph(p, known));
}
