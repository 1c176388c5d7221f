import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from './sample-cache.js';

// Real headless Chromium (Debian's `chromium` package, or $CHROMIUM_PATH) driven by playwright-core,
// for the tests of the run page. Screenshots go to dist/test-output/screenshots/ beside the test
// output, for people to look at.

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => Boolean(p));

export const chromiumPath = CANDIDATES.find((p) => existsSync(p)) ?? null;
export const noChromium = chromiumPath ? false : 'chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)';

export const SCREENSHOT_DIR = join(REPO_ROOT, 'dist', 'test-output', 'screenshots');

export function launchChromium(): Promise<Browser> {
  if (!chromiumPath) throw new Error(String(noChromium));
  return chromium.launch({ executablePath: chromiumPath, headless: true });
}

/** A full-page screenshot under SCREENSHOT_DIR; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Whether the element's font draws Hangul: two different syllables drawn with its computed font
 * must leave ink and differ. Without a Korean font Chromium draws the same empty box (.notdef) for
 * every syllable, so the two bitmaps are equal.
 */
export async function drawsHangul(page: Page, selector: string): Promise<{ ok: boolean; font: string }> {
  // A string, not a function: this project compiles without the DOM's types.
  return page.evaluate(`(() => {
    const el = document.querySelector(${JSON.stringify(selector)});
    if (!el) return { ok: false, font: 'no element ${selector.replace(/[`$\\]/gu, '')}' };
    const font = getComputedStyle(el).fontFamily;
    const draw = (ch) => {
      const c = document.createElement('canvas');
      c.width = 64;
      c.height = 64;
      const ctx = c.getContext('2d');
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, 64, 64);
      ctx.fillStyle = '#000';
      ctx.font = '40px ' + font;
      ctx.fillText(ch, 8, 48);
      const px = ctx.getImageData(0, 0, 64, 64).data;
      let ink = 0;
      let bits = '';
      for (let i = 0; i < px.length; i += 4) {
        bits += px[i] < 128 ? '1' : '0';
        if (px[i] < 128) ink++;
      }
      return { bits, ink };
    };
    const a = draw('한');
    const b = draw('글');
    return { ok: a.ink > 20 && b.ink > 20 && a.bits !== b.bits, font };
  })()`);
}
