import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { RunPageData } from './run-report-data.js';

// The run page as one HTML document: uPlot, its CSS, the page's own script and style all inline,
// so the page needs nothing from outside (report.html opens from a laptop offline; the dashboard
// serves this page and its data only). uPlot comes from its npm package, read at render time.

/** What the page's script starts from: the runs inline (report) or where to follow them (dashboard). */
export type PageConfig =
  | { readonly mode: 'report'; readonly generated: string; readonly runs: readonly RunPageData[] }
  | { readonly mode: 'live'; readonly eventsUrl: string };

const require = createRequire(import.meta.url);
// The page's script and style sit beside this file's source (coordinator/report/client/); from
// dist/coordinator/report/ that is three folders up, then the source path.
const CLIENT_DIR = fileURLToPath(new URL('../../../coordinator/report/client/', import.meta.url));

interface Assets {
  readonly uplotJs: string;
  readonly uplotCss: string;
  readonly pageJs: string;
  readonly pageCss: string;
}

let assets: Assets | null = null;

function loadAssets(): Assets {
  assets ??= {
    uplotJs: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    uplotCss: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
    pageJs: readFileSync(`${CLIENT_DIR}run-page.js`, 'utf8'),
    pageCss: readFileSync(`${CLIENT_DIR}run-page.css`, 'utf8'),
  };
  return assets;
}

/** JSON that is safe inside a <script> element (no "</script>", no "<!--"). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</gu, '\\u003c').replace(/\u2028/gu, '\\u2028').replace(/\u2029/gu, '\\u2029');
}

/** Text that is safe inside a <script> or <style> element. */
function inlineText(text: string): string {
  return text.replace(/<\/(script|style)/giu, '<\\/$1');
}

const chart = (id: string) => `<section class="chart" id="${id}"><div class="plot"></div><div class="note"></div></section>`;

export function renderRunPage(config: PageConfig, title: string): string {
  const a = loadAssets();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title.replace(/[&<>"]/gu, (c) => `&#${c.charCodeAt(0)};`)}</title>
<style>${inlineText(a.uplotCss)}</style>
<style>${inlineText(a.pageCss)}</style>
</head>
<body>
<header><h1>kp-coord runs</h1><div id="connection">${config.mode === 'report' ? `report written ${config.generated}` : 'connecting…'}</div></header>
<h2>Runs</h2>
<div id="runs"></div>
<main id="run" hidden>
<h2 id="run-title"></h2>
<div id="run-meta"></div>
<div class="charts">
${['chart-loss', 'chart-eval', 'chart-lr', 'chart-grad', 'chart-throughput', 'chart-bytes'].map(chart).join('\n')}
</div>
<h2>Workers</h2>
<div id="workers"></div>
<h2>Events</h2>
<div id="timeline"></div>
<h2>Keyphrase scores</h2>
<div id="scores"></div>
<h2>Eval articles: gold and generated keyphrases</h2>
<div id="predictions"></div>
</main>
<script id="kp-data" type="application/json">${scriptJson(config)}</script>
<script>${inlineText(a.uplotJs)}</script>
<script>${inlineText(a.pageJs)}</script>
</body>
</html>
`;
}
