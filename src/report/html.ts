/**
 * A self-contained HTML report: the views' SVGs inline (hover any cell or bar for its numbers),
 * their data as JSON in the page for scripts, no external resources.
 */
import { esc } from './svg.ts';
import type { View } from './view.ts';

export interface HtmlReportOptions {
  title: string;
  /** Lines under the title (what was merged, with which options). */
  lines?: readonly string[];
}

const STYLE = `body{background:#17191d;color:#d9dde4;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:24px 32px;}
h1{font-size:20px;margin:0 0 6px}h2{font-size:15px;margin:28px 0 8px;color:#e8ebf0}p.meta{color:#8b93a1;margin:2px 0;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
section.view svg{max-width:100%;height:auto}footer{margin-top:32px;color:#8b93a1;font-size:12px}`;

export function reportHtml(views: readonly View[], o: HtmlReportOptions): string {
  const sections = views.map((v, i) => `<section class="view" id="view-${i}" data-kind="${esc(v.kind)}"><h2>${esc(v.title)}</h2>\n${v.svg}\n</section>`).join('\n');
  // JSON in a script element: "</" must not end it early
  const data = JSON.stringify(views.map((v) => ({ kind: v.kind, title: v.title, data: v.data }))).replace(/<\//g, '<\\/');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(o.title)}</title><style>${STYLE}</style></head>
<body><h1>${esc(o.title)}</h1>
${(o.lines ?? []).map((l) => `<p class="meta">${esc(l)}</p>`).join('\n')}
${sections}
<footer>Written by loraflow. Hover a cell, bar or line for its numbers; the numbers are also in the page as JSON (script#loraflow-data).</footer>
<script type="application/json" id="loraflow-data">${data}</script>
</body></html>
`;
}
