import { STATUS_TABLE } from "../core/status.js";

/**
 * The state machine as an SVG, laid out from the table alone (a small Sugiyama-style layered
 * layout, nothing placed by hand):
 *   1. break cycles: an edge into a claiming status (a fresh claim restarts the loop) and, for
 *      the rest, edges that close a cycle in a depth-first walk, are drawn as back edges;
 *   2. layers by longest path from the entry statuses, final statuses together at the bottom;
 *   3. edges spanning several layers get a waypoint in each, so they route around boxes;
 *   4. order inside layers by barycenter sweeps (fewest crossings kept), then x positions pulled
 *      to the mean of their neighbours, keeping the order and a minimum gap.
 */

/** The part of a status rule the diagram draws; STATUS_TABLE is one such table. */
export interface StateRule {
  readonly to: readonly string[];
  readonly final?: boolean;
  readonly claimable?: boolean;
  readonly owned?: boolean;
  readonly acquires?: boolean;
  readonly overrides?: boolean;
  readonly description: string;
}

export type StateTable = Readonly<Record<string, StateRule>>;
type Table = StateTable;

interface Edge {
  readonly from: string;
  readonly to: string;
  /** Drawn upwards, against the flow: it closes a cycle. */
  readonly back: boolean;
}

interface Slot {
  readonly id: string;
  /** A real status, or a waypoint of a long edge. */
  readonly status: string | null;
  readonly layer: number;
  readonly width: number;
  x: number;
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface PlacedStatus {
  readonly status: string;
  readonly rule: StateRule;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly layer: number;
}

export interface PlacedEdge extends Edge {
  /** From the source's border to the target's border, through the waypoints. */
  readonly points: Point[];
}

export interface StateLayout {
  readonly statuses: PlacedStatus[];
  readonly edges: PlacedEdge[];
  readonly width: number;
  readonly height: number;
}

const BOX_HEIGHT = 40;
const LAYER_GAP = 96;
const NODE_GAP = 28;
const WAYPOINT_WIDTH = 10;
const MARGIN = 40;
const TOP = 70;
const CHAR = { name: 7.8, flags: 6.1 };

export function stateEdges(table: Table = STATUS_TABLE): Edge[] {
  const statuses = Object.keys(table);
  const entries = entryStatuses(table);
  const back = new Set<string>();
  const key = (from: string, to: string) => `${from}>${to}`;
  for (const from of statuses) {
    for (const to of table[from]?.to ?? []) {
      if (table[to]?.acquires && !entries.includes(from)) back.add(key(from, to));
    }
  }
  // Depth-first from the entries, short branches first so they keep the forward direction.
  const state = new Map<string, "open" | "done">();
  const outDegree = (s: string) => table[s]?.to.length ?? 0;
  const visit = (status: string) => {
    state.set(status, "open");
    const next = [...(table[status]?.to ?? [])].filter((to) => !back.has(key(status, to)));
    next.sort((a, b) => outDegree(a) - outDegree(b));
    for (const to of next) {
      if (state.get(to) === "open") back.add(key(status, to));
      else if (!state.has(to)) visit(to);
    }
    state.set(status, "done");
  };
  for (const status of [...entries, ...statuses]) if (!state.has(status)) visit(status);
  return statuses.flatMap((from) => (table[from]?.to ?? []).map((to) => ({ from, to, back: back.has(key(from, to)) })));
}

function entryStatuses(table: Table): string[] {
  const statuses = Object.keys(table);
  const targets = new Set<string>(statuses.flatMap((s) => table[s]?.to ?? []));
  const entries = statuses.filter((s) => !targets.has(s));
  return entries.length ? entries : statuses.slice(0, 1);
}

/** Longest path from the entries over the forward edges; final statuses share the last layer. */
function layersOf(table: Table, edges: Edge[]): Map<string, number> {
  const statuses = Object.keys(table);
  const layer = new Map<string, number>();
  const preds = new Map<string, string[]>(statuses.map((s) => [s, []]));
  for (const { upper, lower } of edges.map(orient)) preds.get(lower)?.push(upper);
  const depth = (status: string): number => {
    const known = layer.get(status);
    if (known !== undefined) return known;
    const value = Math.max(-1, ...(preds.get(status) ?? []).map(depth)) + 1;
    layer.set(status, value);
    return value;
  };
  statuses.forEach(depth);
  const last = Math.max(0, ...statuses.filter((s) => !table[s]?.final).map((s) => layer.get(s) ?? 0)) + 1;
  for (const status of statuses) if (table[status]?.final) layer.set(status, last);
  return layer;
}

/** An edge as laid out: always from the upper status to the lower one. */
function orient(edge: Edge): { upper: string; lower: string } {
  return edge.back ? { upper: edge.to, lower: edge.from } : { upper: edge.from, lower: edge.to };
}

function boxWidth(status: string, rule: StateRule): number {
  return Math.ceil(Math.max(status.length * CHAR.name, flagLine(rule).length * CHAR.flags) + 24);
}

/** A status's flags in words (recoverTo aside): the same words in the text and the diagram. */
export function statusFlags(rule: StateRule): string[] {
  return [
    rule.final ? "final" : "",
    rule.claimable ? "claimable" : "",
    rule.owned ? "owned" : "",
    rule.acquires ? "claim" : "",
    rule.overrides ? "overrides owner" : "",
  ].filter(Boolean);
}

function flagLine(rule: StateRule): string {
  return statusFlags(rule).join(" · ");
}

export function layoutStates(table: Table = STATUS_TABLE): StateLayout {
  const edges = stateEdges(table);
  const layer = layersOf(table, edges);
  const slots = new Map<string, Slot>();
  for (const [status, rule] of Object.entries(table)) {
    slots.set(status, { id: status, status, layer: layer.get(status) ?? 0, width: boxWidth(status, rule), x: 0 });
  }
  // Each edge as a chain of slots from the upper status down to the lower one.
  const chains = edges.map((edge, index) => {
    const { upper, lower } = orient(edge);
    const chain = [upper];
    for (let l = (layer.get(upper) ?? 0) + 1; l < (layer.get(lower) ?? 0); l++) {
      const id = `~${index}.${l}`;
      slots.set(id, { id, status: null, layer: l, width: WAYPOINT_WIDTH, x: 0 });
      chain.push(id);
    }
    chain.push(lower);
    return chain;
  });
  const layers = orderLayers([...slots.values()], chains);
  placeX(layers, chains, slots);
  return assemble(table, edges, chains, layers, slots);
}

function neighbours(chains: string[][]): { up: Map<string, string[]>; down: Map<string, string[]> } {
  const up = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  const add = (map: Map<string, string[]>, k: string, v: string) => map.set(k, [...(map.get(k) ?? []), v]);
  for (const chain of chains) {
    for (let i = 0; i + 1 < chain.length; i++) {
      const [a, b] = [chain[i] as string, chain[i + 1] as string];
      add(down, a, b);
      add(up, b, a);
    }
  }
  return { up, down };
}

/** Barycenter sweeps, down then up, keeping the order with the fewest crossings. */
function orderLayers(slots: Slot[], chains: string[][]): Slot[][] {
  const count = Math.max(0, ...slots.map((s) => s.layer)) + 1;
  let layers: Slot[][] = Array.from({ length: count }, (_, l) => slots.filter((s) => s.layer === l));
  const { up, down } = neighbours(chains);
  let best = layers.map((l) => [...l]);
  let bestCrossings = crossings(best, down);
  for (let sweep = 0; sweep < 12; sweep++) {
    const downward = sweep % 2 === 0;
    const range = downward ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
    for (const l of range) {
      const ref = layers[downward ? l - 1 : l + 1] ?? [];
      const index = new Map(ref.map((s, i) => [s.id, i]));
      const around = downward ? up : down;
      const current = layers[l] ?? [];
      const weight = (slot: Slot, i: number) => {
        const near = (around.get(slot.id) ?? []).map((id) => index.get(id)).filter((i): i is number => i !== undefined);
        return near.length ? near.reduce((a, b) => a + b, 0) / near.length : i;
      };
      const weighted = current.map((slot, i) => ({ slot, w: weight(slot, i), i }));
      weighted.sort((a, b) => a.w - b.w || a.i - b.i);
      layers = layers.map((layerSlots, k) => (k === l ? weighted.map((w) => w.slot) : layerSlots));
    }
    const c = crossings(layers, down);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map((l) => [...l]);
    }
  }
  return best;
}

function crossings(layers: Slot[][], down: Map<string, string[]>): number {
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const below = new Map((layers[l + 1] ?? []).map((s, i) => [s.id, i]));
    const pairs: [number, number][] = [];
    (layers[l] ?? []).forEach((slot, i) => {
      for (const id of down.get(slot.id) ?? []) {
        const j = below.get(id);
        if (j !== undefined) pairs.push([i, j]);
      }
    });
    for (let a = 0; a < pairs.length; a++) {
      for (let b = a + 1; b < pairs.length; b++) {
        const [p, q] = [pairs[a] as [number, number], pairs[b] as [number, number]];
        if ((p[0] - q[0]) * (p[1] - q[1]) < 0) total++;
      }
    }
  }
  return total;
}

/** x of each slot's center: packed, then pulled to its neighbours' mean, keeping order and gaps. */
function placeX(layers: Slot[][], chains: string[][], slots: Map<string, Slot>): void {
  const { up, down } = neighbours(chains);
  for (const layer of layers) {
    let x = 0;
    for (const slot of layer) {
      slot.x = x + slot.width / 2;
      x += slot.width + NODE_GAP;
    }
  }
  const widest = Math.max(...layers.map(span));
  for (const layer of layers) shift(layer, (widest - span(layer)) / 2);
  for (let round = 0; round < 40; round++) {
    for (const layer of round % 2 === 0 ? layers : [...layers].reverse()) {
      const desired = layer.map((slot) => {
        const near = [...(up.get(slot.id) ?? []), ...(down.get(slot.id) ?? [])].map((id) => slots.get(id)?.x ?? slot.x);
        return near.length ? near.reduce((a, b) => a + b, 0) / near.length : slot.x;
      });
      settle(layer, desired);
    }
  }
  const left = Math.min(...layers.flatMap((layer) => layer.map((s) => s.x - s.width / 2)));
  for (const layer of layers) shift(layer, MARGIN - left);
}

function span(layer: Slot[]): number {
  return layer.reduce((w, s) => w + s.width, 0) + NODE_GAP * Math.max(0, layer.length - 1);
}

function shift(layer: Slot[], dx: number): void {
  for (const slot of layer) slot.x += dx;
}

/**
 * Closest positions to `desired` that keep the layer's order and gaps (pool adjacent violators):
 * slots pushed together move as one block, centered on the mean of what they want.
 */
function settle(layer: Slot[], desired: number[]): void {
  interface Block {
    start: number;
    end: number;
    /** Sum of desired left offsets of the block's first slot, and how many. */
    sum: number;
    n: number;
  }
  const offset: number[] = [];
  let acc = 0;
  layer.forEach((slot, i) => {
    offset.push(acc + slot.width / 2);
    acc += slot.width + NODE_GAP;
    void i;
  });
  const blocks: Block[] = [];
  layer.forEach((_, i) => {
    blocks.push({ start: i, end: i, sum: (desired[i] ?? 0) - (offset[i] ?? 0), n: 1 });
    for (;;) {
      const last = blocks[blocks.length - 1] as Block;
      const prev = blocks[blocks.length - 2];
      if (!prev || prev.sum / prev.n <= last.sum / last.n) break;
      blocks.splice(blocks.length - 2, 2, { start: prev.start, end: last.end, sum: prev.sum + last.sum, n: prev.n + last.n });
    }
  });
  for (const block of blocks) {
    const base = block.sum / block.n;
    for (let i = block.start; i <= block.end; i++) (layer[i] as Slot).x = base + (offset[i] ?? 0);
  }
}

function assemble(table: Table, edges: Edge[], chains: string[][], layers: Slot[][], slots: Map<string, Slot>): StateLayout {
  const y = (l: number) => TOP + l * (BOX_HEIGHT + LAYER_GAP);
  const statuses: PlacedStatus[] = [];
  for (const slot of slots.values()) {
    if (slot.status === null) continue;
    const rule = table[slot.status] as StateRule;
    statuses.push({
      status: slot.status,
      rule,
      x: slot.x - slot.width / 2,
      y: y(slot.layer),
      width: slot.width,
      height: BOX_HEIGHT,
      layer: slot.layer,
    });
  }
  const ports = portsOf(chains, slots);
  const placed = edges.map((edge, index) => {
    const chain = chains[index] as string[];
    const points: Point[] = chain.map((id, i) => {
      const slot = slots.get(id) as Slot;
      if (i === 0) return { x: ports.get(`${index}:bottom`) ?? slot.x, y: y(slot.layer) + BOX_HEIGHT };
      if (i === chain.length - 1) return { x: ports.get(`${index}:top`) ?? slot.x, y: y(slot.layer) };
      return { x: slot.x, y: y(slot.layer) + BOX_HEIGHT / 2 };
    });
    return { ...edge, points: edge.back ? points.reverse() : points };
  });
  const width = Math.max(...statuses.map((s) => s.x + s.width), ...[...slots.values()].map((s) => s.x + s.width / 2)) + MARGIN;
  const height = y(layers.length - 1) + BOX_HEIGHT + MARGIN;
  return { statuses, edges: placed, width: Math.ceil(width), height: Math.ceil(height) };
}

/** Where each edge leaves its upper box (bottom side) and enters its lower box (top side), spread out. */
function portsOf(chains: string[][], slots: Map<string, Slot>): Map<string, number> {
  const sides = new Map<string, { edge: number; toward: number }[]>();
  const add = (key: string, edge: number, toward: number) => sides.set(key, [...(sides.get(key) ?? []), { edge, toward }]);
  chains.forEach((chain, edge) => {
    const [first, second] = [chain[0] as string, chain[1] as string];
    const [beforeLast, last] = [chain[chain.length - 2] as string, chain[chain.length - 1] as string];
    add(`${first}:bottom`, edge, slots.get(second)?.x ?? 0);
    add(`${last}:top`, edge, slots.get(beforeLast)?.x ?? 0);
  });
  const ports = new Map<string, number>();
  for (const [key, list] of sides) {
    const [id, side] = key.split(":") as [string, string];
    const slot = slots.get(id) as Slot;
    list.sort((a, b) => a.toward - b.toward || a.edge - b.edge);
    const usable = slot.width - 16;
    list.forEach(({ edge }, i) => ports.set(`${edge}:${side}`, slot.x - usable / 2 + (usable * (i + 1)) / (list.length + 1)));
  }
  return ports;
}

const STYLE = {
  final: { fill: "#2f3b4c", stroke: "#111827", text: "#ffffff", sub: "#cbd5e1" },
  claimable: { fill: "#dbeafe", stroke: "#2563eb", text: "#1e3a8a", sub: "#3b5b9a" },
  owned: { fill: "#dcfce7", stroke: "#16a34a", text: "#14532d", sub: "#3f6f50" },
  overrides: { fill: "#ffedd5", stroke: "#ea580c", text: "#7c2d12", sub: "#9a4a24" },
  other: { fill: "#f3f4f6", stroke: "#6b7280", text: "#1f2937", sub: "#4b5563" },
} as const;

type StyleName = keyof typeof STYLE;

function styleOf(rule: StateRule): StyleName {
  if (rule.final) return "final";
  if (rule.overrides) return "overrides";
  if (rule.claimable) return "claimable";
  if (rule.owned) return "owned";
  return "other";
}

const EDGE_COLOR = { normal: "#4b5563", recovery: "#ea580c", final: "#111827" };

export function renderStateDiagramSvg(table: Table = STATUS_TABLE): string {
  const layout = layoutStates(table);
  const legendY = layout.height;
  const width = Math.max(layout.width, 760);
  const height = legendY + 70;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace">`,
    `<title>nenc invocation states</title>`,
    "<defs>",
    ...Object.entries(EDGE_COLOR).map(
      ([name, color]) =>
        `<marker id="arrow-${name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${color}"/></marker>`,
    ),
    "</defs>",
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${MARGIN}" y="32" font-size="16" font-weight="bold" fill="#111827">nenc invocation states</text>`,
    `<text x="${MARGIN}" y="50" font-size="11" fill="#4b5563">generated from STATUS_TABLE (src/core/status.ts): ${layout.statuses.length} statuses, ${layout.edges.length} transitions</text>`,
  ];
  for (const edge of layout.edges) out.push(edgeSvg(edge, table));
  for (const status of layout.statuses) out.push(statusSvg(status));
  out.push(legendSvg(legendY));
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function edgeKind(edge: Edge, table: Table): keyof typeof EDGE_COLOR {
  if (table[edge.to]?.overrides) return "recovery";
  if (table[edge.to]?.final) return "final";
  return "normal";
}

function edgeSvg(edge: PlacedEdge, table: Table): string {
  const kind = edgeKind(edge, table);
  const d = smoothPath(edge.points);
  if (!d) return "";
  const dash = edge.back ? ` stroke-dasharray="6 4"` : "";
  return (
    `<path class="transition${edge.back ? " back" : ""}" data-from="${edge.from}" data-to="${edge.to}" d="${d}" fill="none" ` +
    `stroke="${EDGE_COLOR[kind]}" stroke-width="1.4"${dash} marker-end="url(#arrow-${kind})"><title>${edge.from} → ${edge.to}</title></path>`
  );
}

function statusSvg(placed: PlacedStatus): string {
  const style = STYLE[styleOf(placed.rule)];
  const { x, y, width, height } = placed;
  const cx = round(x + width / 2);
  const flags = flagLine(placed.rule);
  const inner = placed.rule.final
    ? `<rect x="${round(x + 3)}" y="${round(y + 3)}" width="${round(width - 6)}" height="${height - 6}" rx="5" fill="none" stroke="${style.sub}" stroke-width="1"/>`
    : "";
  return [
    `<g class="status${placed.rule.final ? " final" : ""}" data-status="${placed.status}">`,
    `<title>${placed.status}: ${escapeXml(placed.rule.description)}</title>`,
    `<rect x="${round(x)}" y="${round(y)}" width="${round(width)}" height="${height}" rx="8" fill="${style.fill}" stroke="${style.stroke}" stroke-width="${placed.rule.final ? 2 : 1.5}"/>`,
    inner,
    `<text x="${cx}" y="${round(y + (flags ? 17 : 24))}" text-anchor="middle" font-size="13" font-weight="bold" fill="${style.text}">${placed.status}</text>`,
    flags ? `<text x="${cx}" y="${round(y + 32)}" text-anchor="middle" font-size="10" fill="${style.sub}">${escapeXml(flags)}</text>` : "",
    "</g>",
  ]
    .filter(Boolean)
    .join("");
}

function legendSvg(y: number): string {
  const items: [StyleName, string][] = [
    ["claimable", "in the queue"],
    ["owned", "owned by a runner"],
    ["overrides", "recovery"],
    ["other", "unowned, waiting"],
    ["final", "final"],
  ];
  const parts: string[] = [];
  let x = MARGIN;
  for (const [name, label] of items) {
    const style = STYLE[name];
    parts.push(`<rect x="${x}" y="${y}" width="14" height="14" rx="3" fill="${style.fill}" stroke="${style.stroke}"/>`);
    parts.push(`<text x="${x + 20}" y="${y + 11}" font-size="11" fill="#374151">${label}</text>`);
    x += 40 + label.length * 6.6;
  }
  const line = (x1: number, color: string, dash: string, label: string, marker: string) =>
    `<path d="M${x1},${y + 36} L${x1 + 36},${y + 36}" stroke="${color}" stroke-width="1.4"${dash} marker-end="url(#arrow-${marker})"/>` +
    `<text x="${x1 + 44}" y="${y + 40}" font-size="11" fill="#374151">${label}</text>`;
  parts.push(line(MARGIN, EDGE_COLOR.normal, "", "transition", "normal"));
  parts.push(line(MARGIN + 150, EDGE_COLOR.normal, ` stroke-dasharray="6 4"`, "back into the loop", "normal"));
  parts.push(line(MARGIN + 350, EDGE_COLOR.recovery, "", "taken back by recovery", "recovery"));
  return `<g class="legend">${parts.join("")}</g>`;
}

/**
 * A smooth curve through the points (Catmull-Rom as cubic Béziers), leaving the first point and
 * entering the last one vertically, as an edge leaves and enters a box.
 */
function smoothPath(points: Point[]): string {
  const [first, second] = points;
  const last = points[points.length - 1];
  if (!first || !second || !last) return "";
  const before = points[points.length - 2] as Point;
  const lead = { x: first.x, y: first.y - (second.y - first.y) };
  const tail = { x: last.x, y: last.y + (last.y - before.y) };
  const all = [lead, ...points, tail];
  let d = `M${round(first.x)},${round(first.y)}`;
  for (let i = 1; i + 2 < all.length; i++) {
    const [p0, p1, p2, p3] = [all[i - 1], all[i], all[i + 1], all[i + 2]] as [Point, Point, Point, Point];
    const c1 = { x: p1.x + (p2.x - p0.x) / 6, y: p1.y + (p2.y - p0.y) / 6 };
    const c2 = { x: p2.x - (p3.x - p1.x) / 6, y: p2.y - (p3.y - p1.y) / 6 };
    d += ` C${round(c1.x)},${round(c1.y)} ${round(c2.x)},${round(c2.y)} ${round(p2.x)},${round(p2.y)}`;
  }
  return d;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
