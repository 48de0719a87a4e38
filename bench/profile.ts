/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) by self time: per function and per file
 * or package. Used by `--profile`, and on its own:
 *
 *   node dist/bench/profile.js bench/results/tributary.cpuprofile [--top 25]
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface HotSpot {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly selfPct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  /** Self time outside idle, in ms. */
  readonly busyMs: number;
  readonly functions: HotSpot[];
  readonly files: HotSpot[];
}

/** A short place name: `src/sinks/gold.js`, `better-sqlite3`, `node:internal/...`, `(native)`. */
export function placeOf(url: string): string {
  if (url === "") return "(native)";
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const dist = url.lastIndexOf("/dist/");
  if (dist >= 0) return url.slice(dist + "/dist/".length);
  return url.replace(/^file:\/\//, "");
}

/** Reads a `.cpuprofile` and ranks functions and files by self time. */
export function summarizeProfile(path: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const place = placeOf(f.url);
    const name = f.functionName || "(anonymous)";
    const where = f.url ? `${place}:${f.lineNumber + 1}` : place;
    const key = `${name}@${where}`;
    const e = fns.get(key) ?? { name, where, us: 0 };
    e.us += us;
    fns.set(key, e);
    const fileKey = f.url ? place : name; // (garbage collector), (program) stay distinct
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = <T extends { us: number }>(xs: T[]) => xs.sort((a, b) => b.us - a.us).slice(0, top);
  return {
    file: path,
    totalMs: total / 1000,
    busyMs: busy / 1000,
    functions: rank([...fns.values()]).map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, selfPct: (e.us / busy) * 100 })),
    files: rank([...files].map(([where, us]) => ({ where, us }))).map((e) => ({
      name: e.where,
      where: e.where,
      selfMs: e.us / 1000,
      selfPct: (e.us / busy) * 100,
    })),
  };
}

/** Text rendering of a summary. */
export function formatProfile(s: ProfileSummary): string {
  const lines = [`profile ${s.file}: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled (self time, % of busy)`, "", "by file / package:"];
  for (const f of s.files) lines.push(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}`);
  lines.push("", "by function:");
  for (const f of s.functions) lines.push(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node dist/bench/profile.js FILE.cpuprofile [--top N]\n");
    process.exit(2);
  }
  const i = process.argv.indexOf("--top");
  process.stdout.write(formatProfile(summarizeProfile(file, i > 0 ? Number(process.argv[i + 1]) : 25)) + "\n");
}
