import type { FigureSpec } from './figures.js';
import { formatValue } from './figures.js';
import type { BenchReport } from './report.js';

/**
 * Renders the report as an SVG chart: one panel per workload, a group of bars
 * per system, a bar per figure with its min–max whisker and median label.
 * Panels whose values span orders of magnitude use a log scale (said in their titles).
 */

interface Panel {
  title: string;
  ids: string[];
  names: string[];
  scale: 'log' | 'linear';
}

const COLORS = ['#3366cc', '#dc7633', '#2e9e5b', '#9b59b6', '#c0392b'];
const WIDTH = 1600;
const PANEL_W = 780;
const PANEL_H = 330;
const FONT = 'DejaVu Sans, Arial, sans-serif';

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderSvg(report: BenchReport): string {
  const levels = report.params.memoryLevels;
  const panels: Panel[] = [
    {
      title: 'W1 send throughput (msg/s, log scale; higher is better)',
      ids: ['w1.seq', 'w1.c64', 'w1.bulk'],
      names: ['one at a time', '64 in flight', 'bulk 1,000'],
      scale: 'log',
    },
    {
      title: 'W2 drain, no-op handler (msg/s, log scale; higher is better)',
      ids: ['w2.c1', 'w2.c32', 'w2k.c32', 'w2f.c32'],
      names: ['concurrency 1', 'concurrency 32', '1,000 ordering keys, c32', 'fan-out to 3, c32'],
      scale: 'log',
    },
    {
      title: 'W3 send → handler start, idle worker in another process (ms, log; lower is better)',
      ids: ['w3.p50', 'w3.p95', 'w3.p99', 'w3.max'],
      names: ['p50', 'p95', 'p99', 'max'],
      scale: 'log',
    },
    {
      title: `W4 spike: ${report.params.spikeRate}/s for ${report.params.spikeSeconds} s (ms, log; lower is better)`,
      ids: ['w4.p99', 'w4.drain'],
      names: ['send latency p99', 'drain after last send'],
      scale: 'log',
    },
    {
      title: 'W4 achieved send rate (msg/s; target line = offered rate)',
      ids: ['w4.rate'],
      names: ['achieved send rate'],
      scale: 'linear',
    },
    {
      title: 'Worker RSS with a backlog (MB; lower is better)',
      ids: levels.map((l) => `mem.${l}`),
      names: levels.map((l) => `backlog ${l.toLocaleString('en-US')}`),
      scale: 'linear',
    },
  ];
  const systems = report.systems.filter((s) => s.available);
  const rows = Math.ceil(panels.length / 2);
  const height = 120 + rows * (PANEL_H + 40);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">`,
  );
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  const m = report.machine;
  parts.push(
    `<text x="20" y="32" font-size="22" font-weight="bold">Sluice vs BullMQ, pg-boss, Graphile Worker — same machine, same run</text>`,
  );
  parts.push(
    `<text x="20" y="58" font-size="14" fill="#444">${esc(`${report.startedAt.slice(0, 10)} · ${m.cpus} × ${m.cpu} · ${m.memoryGb} GB · fsync ${Math.round(m.fsyncPerSec)}/s · ${m.postgres} · ${m.redis} (${m.redisPersistence}) · median of ${report.runs} run(s), whiskers min–max`)}</text>`,
  );
  parts.push(
    `<text x="20" y="80" font-size="13" fill="#a00">${esc('BullMQ figures are on Redis without persistence (not durable); Sluice/SQLite fsyncs every commit; PostgreSQL systems commit with synchronous_commit=on.')}</text>`,
  );
  panels.forEach((panel, i) => {
    const x = 20 + (i % 2) * (PANEL_W + 20);
    const y = 110 + Math.floor(i / 2) * (PANEL_H + 40);
    parts.push(drawPanel(report, panel, systems, x, y));
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function drawPanel(report: BenchReport, panel: Panel, systems: BenchReport['systems'], x0: number, y0: number): string {
  const out: string[] = [];
  const plotX = x0 + 70;
  const plotY = y0 + 50;
  const plotW = PANEL_W - 90;
  const plotH = PANEL_H - 110;
  out.push(`<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="#fafafa" stroke="#ddd"/>`);
  out.push(`<text x="${x0 + 10}" y="${y0 + 22}" font-size="15" font-weight="bold">${esc(panel.title)}</text>`);
  // Legend
  let lx = x0 + 10;
  panel.names.forEach((name, j) => {
    out.push(`<rect x="${lx}" y="${y0 + 30}" width="10" height="10" fill="${COLORS[j % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 14}" y="${y0 + 39}" font-size="11">${esc(name)}</text>`);
    lx += 24 + name.length * 6.5;
  });
  const values: number[] = [];
  for (const s of systems) {
    for (const id of panel.ids) {
      const r = report.results[s.name]?.[id];
      if (r !== undefined) values.push(r.min, r.max, r.median);
    }
  }
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  if (positive.length === 0) {
    out.push(`<text x="${plotX}" y="${plotY + plotH / 2}" font-size="13" fill="#888">not measured</text>`);
    return out.join('\n');
  }
  const unit = figureUnit(report, panel.ids[0] as string);
  let scale: (v: number) => number;
  const ticks: number[] = [];
  if (panel.scale === 'log') {
    const lo = Math.floor(Math.log10(Math.min(...positive)));
    const hi = Math.ceil(Math.log10(Math.max(...positive)));
    const span = Math.max(1, hi - lo);
    scale = (v) => plotY + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / span) * plotH;
    for (let e = lo; e <= lo + span; e++) ticks.push(10 ** e);
  } else {
    let top = Math.max(...positive) * 1.15;
    if (panel.ids[0] === 'w4.rate') top = Math.max(top, report.params.spikeRate * 1.15);
    const step = niceStep(top / 5);
    top = Math.ceil(top / step) * step;
    scale = (v) => plotY + plotH - (v / top) * plotH;
    for (let t = 0; t <= top + 1e-9; t += step) ticks.push(t);
  }
  for (const t of ticks) {
    const ty = scale(t);
    out.push(`<line x1="${plotX}" x2="${plotX + plotW}" y1="${ty}" y2="${ty}" stroke="#e3e3e3"/>`);
    out.push(
      `<text x="${plotX - 6}" y="${ty + 4}" font-size="10" text-anchor="end" fill="#555">${esc(shortNumber(t))}</text>`,
    );
  }
  if (panel.ids[0] === 'w4.rate') {
    const ty = scale(report.params.spikeRate);
    out.push(`<line x1="${plotX}" x2="${plotX + plotW}" y1="${ty}" y2="${ty}" stroke="#c00" stroke-dasharray="6 4"/>`);
  }
  out.push(`<line x1="${plotX}" x2="${plotX + plotW}" y1="${plotY + plotH}" y2="${plotY + plotH}" stroke="#888"/>`);
  const groupW = plotW / systems.length;
  const barW = Math.min(34, (groupW - 16) / panel.ids.length);
  systems.forEach((s, g) => {
    const gx = plotX + g * groupW + (groupW - barW * panel.ids.length) / 2;
    out.push(
      `<text x="${plotX + g * groupW + groupW / 2}" y="${plotY + plotH + 18}" font-size="12" text-anchor="middle">${esc(s.label)}</text>`,
    );
    panel.ids.forEach((id, j) => {
      const r = report.results[s.name]?.[id];
      const bx = gx + j * barW;
      if (r === undefined || !Number.isFinite(r.median)) {
        const sluiceOnly = report.figures.find((f) => f.id === id)?.sluiceOnly === true && s.peer;
        if (!sluiceOnly) {
          out.push(
            `<text x="${bx + barW / 2}" y="${plotY + plotH - 6}" font-size="9" text-anchor="middle" fill="#a00">n/a</text>`,
          );
        }
        return;
      }
      const top = scale(r.median);
      const base = plotY + plotH;
      out.push(
        `<rect x="${bx + 1}" y="${Math.min(top, base - 1)}" width="${barW - 2}" height="${Math.max(1, base - top)}" fill="${COLORS[j % COLORS.length]}"/>`,
      );
      if (r.runs > 1) {
        const cx = bx + barW / 2;
        out.push(
          `<line x1="${cx}" x2="${cx}" y1="${scale(r.min)}" y2="${scale(r.max)}" stroke="#222" stroke-width="1.2"/>`,
        );
      }
      out.push(
        `<text x="${bx + barW / 2}" y="${Math.min(top, base) - 4}" font-size="9" text-anchor="middle" transform="rotate(-60 ${bx + barW / 2} ${Math.min(top, base) - 4})">${esc(formatValue(r.median, unit))}</text>`,
      );
    });
  });
  return out.join('\n');
}

function figureUnit(report: BenchReport, id: string): FigureSpec['unit'] {
  return report.figures.find((f) => f.id === id)?.unit ?? 'ms';
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function shortNumber(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(Math.round(v * 1000) / 1000);
}

/** Renders the SVG to PNG with resvg (a dev dependency); returns null with the reason if it cannot. */
export async function renderPng(svg: string): Promise<{ png: Buffer } | { error: string }> {
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    const resvg = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } });
    return { png: resvg.render().asPng() };
  } catch (error) {
    return { error: String(error) };
  }
}
