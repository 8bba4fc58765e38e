#!/usr/bin/env node
// Browser end-to-end check of the Concierge chat UI.
//
//   node tests/e2e/browser/chat.mjs --url http://127.0.0.1:PORT/ \
//     --question "How long do I have to return my robot vacuum?" [--screenshot /tmp/x.png]
//
// Opens the page in Debian's headless Chromium (via playwright-core from
// frontend/node_modules; never downloads a browser), asks the question and
// waits for a finished assistant answer with at least one citation. Prints
// one JSON line to stdout:
//   {"agent": ..., "answer": ..., "citations": [{"text": ...}], "sawStreaming": bool}
// and exits 0; on failure prints {"error": ..., ...} and exits 1.
//
// --drop-mid-answer closes the page's WebSocket once the answer has started
// streaming (the page reconnects and the edge replays the answer) and checks
// that every text the streaming bubble showed is a prefix of the final answer
// (no "Thirty Thirty days"); the output then has "dropped": true.

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

// Never hang: give up (with cleanup) at 82 s, exit regardless at 89 s.
const OVERALL_TIMEOUT_MS = 90_000;
const GIVE_UP_AFTER_MS = OVERALL_TIMEOUT_MS - 8_000;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let browser = null;
let page = null;
let finished = false;
let emitted = false;
let screenshotPath = null;
const pageErrors = [];

function emit(obj) {
  emitted = true;
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
}

async function fail(message, extra = {}) {
  if (finished) return;
  finished = true;
  // save the screenshot on failure too: it shows what went wrong
  if (screenshotPath && page) {
    await Promise.race([
      page.screenshot({ path: screenshotPath }).catch(() => {}),
      new Promise((r) => setTimeout(r, 3_000)),
    ]);
  }
  emit({ error: message, ...extra, ...(pageErrors.length ? { pageErrors: pageErrors.slice(-10) } : {}) });
  await closeBrowser();
  process.exit(1);
}

const giveUpTimer = setTimeout(() => {
  void fail(`overall timeout after ${GIVE_UP_AFTER_MS / 1000}s`);
}, GIVE_UP_AFTER_MS);
const hardTimer = setTimeout(() => {
  if (!emitted) emit({ error: `overall timeout after ${OVERALL_TIMEOUT_MS / 1000}s` });
  process.exit(1);
}, OVERALL_TIMEOUT_MS - 1_000);

process.on('unhandledRejection', (err) => void fail(`unhandled: ${err?.message ?? err}`));

function loadPlaywright() {
  const require = createRequire(new URL('../../../frontend/package.json', import.meta.url));
  try {
    return require('playwright-core');
  } catch (err) {
    throw new Error(`playwright-core not found (run "npm ci" in frontend/): ${err.message}`);
  }
}

/**
 * Runs in the page before any of its scripts: remembers streaming bubbles and
 * the texts they showed, and keeps the page's WebSockets so they can be closed.
 */
function installStreamingObserver() {
  const state = { sawStreaming: false, streamedTexts: [], sockets: [], dropped: false };
  Object.defineProperty(window, '__conciergeE2E', { value: state });
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      state.sockets.push(this);
    }
  };
  state.dropSockets = () => {
    for (const ws of state.sockets) if (ws.readyState <= 1) ws.close(4000, 'e2e: simulated drop');
    state.dropped = true;
  };
  const check = () => {
    const bubbles = document.querySelectorAll('[data-testid="message-assistant"][data-streaming="true"]');
    if (bubbles.length) state.sawStreaming = true;
    for (const b of bubbles) {
      const t = b.querySelector('[data-testid="answer-text"]')?.textContent ?? '';
      if (t && state.streamedTexts.at(-1) !== t && state.streamedTexts.length < 5000) state.streamedTexts.push(t);
    }
  };
  new MutationObserver(check).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    characterData: true,
    attributeFilter: ['data-streaming', 'data-testid'],
  });
}

/** Runs in the page: what the conversation shows after `baseline` assistant bubbles. */
function snapshot(baseline) {
  const text = (el) => (el ? el.innerText.trim() : '');
  const bubbles = [...document.querySelectorAll('[data-testid="message-assistant"]')].slice(baseline);
  const streaming = bubbles.some((b) => b.getAttribute('data-streaming') === 'true');
  if (streaming) window.__conciergeE2E.sawStreaming = true;
  const finals = bubbles.filter((b) => b.getAttribute('data-streaming') !== 'true');
  const describe = (b) => ({
    answer: text(b.querySelector('[data-testid="answer-text"]')),
    citations: [...b.querySelectorAll('[data-testid="citation"]')].map((c) => ({
      text: text(c.querySelector('[data-testid="citation-label"]') || c),
    })),
  });
  const withCitations = finals.find((b) => b.querySelector('[data-testid="citation"]'));
  return {
    agent: text(document.querySelector('[data-testid="agent-name"]')),
    streaming,
    typing: !!document.querySelector('[data-testid="typing-indicator"]'),
    final: withCitations ? describe(withCitations) : finals.length ? describe(finals[finals.length - 1]) : null,
    finalHasCitations: !!withCitations,
    errors: [...document.querySelectorAll('[data-testid="error-notice"]')].map(text),
    notSent: [...document.querySelectorAll('[data-testid="message-user"][data-status="failed"]')].map(
      (b) => text(b.parentElement?.querySelector('[data-testid="send-error"]')) || 'not sent',
    ),
    streamingText: streaming ? text(bubbles.find((b) => b.getAttribute('data-streaming') === 'true')?.querySelector('[data-testid="answer-text"]')) : '',
    escalations: [...document.querySelectorAll('[data-testid="escalation-notice"]')].map(text),
    sawStreaming: window.__conciergeE2E.sawStreaming,
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      question: { type: 'string' },
      screenshot: { type: 'string' },
      'answer-timeout': { type: 'string', default: '60' },
      viewport: { type: 'string', default: '1280x860' },
      'drop-mid-answer': { type: 'boolean', default: false },
    },
  });
  if (!values.url || !values.question) {
    return fail('usage: chat.mjs --url URL --question TEXT [--screenshot FILE] [--answer-timeout SECONDS]');
  }
  screenshotPath = values.screenshot ?? null;
  const answerTimeoutMs = Math.max(1, Number(values['answer-timeout']) || 60) * 1000;
  const [vw, vh] = values.viewport.split('x').map((n) => Number.parseInt(n, 10));

  const { chromium } = loadPlaywright();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  const context = await browser.newContext({ viewport: { width: vw || 1280, height: vh || 860 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err?.message ?? err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  await page.addInitScript(installStreamingObserver);

  await page.goto(values.url, { waitUntil: 'domcontentloaded', timeout: 20_000 });
  try {
    await page.getByTestId('agent-name').waitFor({ state: 'visible', timeout: 20_000 });
  } catch {
    const errors = await page.evaluate(snapshot, 0).then((s) => s.errors).catch(() => []);
    return fail('agent-name did not appear', { errors });
  }

  const input = page.getByTestId('chat-input');
  const sendButton = page.getByTestId('send-button');
  await input.fill(values.question, { timeout: 10_000 });
  // the button is enabled once the session and its history are loaded
  try {
    await page.waitForSelector('[data-testid="send-button"]:not([disabled])', { timeout: 20_000 });
  } catch {
    const errors = await page.evaluate(snapshot, 0).then((s) => s.errors).catch(() => []);
    return fail('send-button never became enabled (session did not load)', { errors });
  }
  const baseline = await page.locator('[data-testid="message-assistant"]').count();
  const baselineErrors = await page.locator('[data-testid="error-notice"]').count();
  await page.evaluate(() => {
    window.__conciergeE2E.sawStreaming = false;
    window.__conciergeE2E.streamedTexts = [];
  });
  const dropMidAnswer = values['drop-mid-answer'];
  let dropped = false;
  await sendButton.click({ timeout: 10_000 });

  const deadline = Date.now() + answerTimeoutMs;
  let last = null;
  let uncitedSince = 0;
  while (Date.now() < deadline) {
    last = await page.evaluate(snapshot, baseline);
    if (last.final && last.finalHasCitations && !last.streaming) break;
    if (last.errors.length > baselineErrors) {
      return fail('the page showed an error', { errors: last.errors, answer: last.final?.answer ?? null });
    }
    if (last.notSent.length) return fail('the question was not sent', { notSent: last.notSent });
    if (dropMidAnswer && !dropped && last.streaming && last.streamingText) {
      dropped = true;
      await page.evaluate(() => window.__conciergeE2E.dropSockets());
    }
    // A finished answer without sources: give late frames a moment, then give up.
    if (last.final && !last.streaming && !last.typing) {
      uncitedSince ||= Date.now();
      if (Date.now() - uncitedSince > 3_000) {
        return fail('the answer has no citations', { answer: last.final.answer, escalations: last.escalations });
      }
    } else {
      uncitedSince = 0;
    }
    await page.waitForTimeout(100);
  }
  if (!last?.final || !last.finalHasCitations) {
    return fail(`no finished answer with citations within ${answerTimeoutMs / 1000}s`, {
      partial: last?.final?.answer ?? null,
      streaming: last?.streaming ?? null,
      errors: last?.errors ?? [],
    });
  }

  if (dropMidAnswer) {
    if (!dropped) return fail('the answer never streamed, so the socket was not dropped', { answer: last.final.answer });
    // Every text shown while streaming must be a prefix of the answer. Whitespace
    // is ignored: textContent joins paragraphs that innerText separates.
    const norm = (t) => t.replace(/\s+/g, '');
    const finalText = norm(last.final.answer);
    const streamed = await page.evaluate(() => window.__conciergeE2E.streamedTexts);
    const bad = streamed.map(norm).find((t) => !finalText.startsWith(t));
    if (bad !== undefined) {
      return fail('the streamed text was not a prefix of the final answer (duplicated after the reconnect?)', {
        streamed: bad,
        answer: last.final.answer,
      });
    }
  }

  if (screenshotPath) {
    await page.waitForTimeout(300); // let the entry animation settle
    await page.screenshot({ path: screenshotPath });
  }
  finished = true;
  emit({
    agent: last.agent,
    answer: last.final.answer,
    citations: last.final.citations,
    sawStreaming: last.sawStreaming,
    ...(dropMidAnswer ? { dropped } : {}),
  });
  await closeBrowser();
  clearTimeout(giveUpTimer);
  clearTimeout(hardTimer);
  process.exit(0);
}

main().catch((err) => fail(String(err?.message ?? err).split('\n')[0]));
