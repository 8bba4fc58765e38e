import { describe, expect, it } from 'vitest';
import { parseAnswer } from './answerText';

describe('parseAnswer', () => {
  it('splits paragraphs and links known markers only', () => {
    const paras = parseAnswer('You have 30 days [1].\n\nSee also [2] and [1, 3].\nBye', new Set([1, 3]));
    expect(paras).toHaveLength(2);
    expect(paras[0]).toEqual([
      { type: 'text', text: 'You have 30 days ' },
      { type: 'cite', indexes: [1], raw: '[1]' },
      { type: 'text', text: '.' },
    ]);
    expect(paras[1]).toEqual([
      { type: 'text', text: 'See also [2] and ' },
      { type: 'cite', indexes: [1, 3], raw: '[1, 3]' },
      { type: 'text', text: '.\nBye' },
    ]);
  });

  it('leaves partial markers of a streaming answer as text', () => {
    expect(parseAnswer('Returns [1', new Set([1]))).toEqual([[{ type: 'text', text: 'Returns [1' }]]);
  });
});
