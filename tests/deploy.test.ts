/**
 * The files in deploy/ against the real thing: every metric the Grafana dashboard queries is
 * exported by a running topology's /metrics, the dashboard's PromQL parses (promtool), the
 * Prometheus scrape config points at the default `http.listen` and passes `promtool check config`,
 * and the systemd unit has the settings the daemon relies on (and parses, where systemd-analyze
 * is installed).
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { concat, NEVER } from "rxjs";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { createTopology } from "../src/topology.js";
import { generatorSource } from "../src/sources/generator.js";

const deployFile = (name: string) => fileURLToPath(new URL(`../deploy/${name}`, import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a tool if it is installed; null when it is not on PATH. */
function tool(cmd: string, args: string[]): { status: number | null; output: string } | null {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return null;
  if (r.error) throw r.error;
  return { status: r.status, output: r.stdout + r.stderr };
}

interface Target {
  readonly expr?: string;
  readonly refId?: string;
}
interface Panel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
}

/** Every panel, including those nested in (collapsed) rows. */
function allPanels(panels: readonly Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}

const METRIC = /\b(tributary_[a-z_]+|process_[a-z_]+|nodejs_[a-z_]+)\b/g;
const SERIES_SUFFIX = /_(bucket|sum|count)$/;

/** Metric names in a PromQL expression, with histogram series mapped back to their base name. */
function metricNames(expr: string): { name: string; histogram: boolean }[] {
  return [...expr.matchAll(METRIC)].map((m) => {
    const series = m[1]!;
    return SERIES_SUFFIX.test(series) ? { name: series.replace(SERIES_SUFFIX, ""), histogram: true } : { name: series, histogram: false };
  });
}

const dashboard = JSON.parse(readFileSync(deployFile("grafana-dashboard.json"), "utf8"));
const panels = allPanels(dashboard.panels);
const queryPanels = panels.filter((p) => p.type !== "row");
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? `#${p.id}`, refId: t.refId ?? "?", expr: t.expr ?? "" })));
const variableQueries: string[] = (dashboard.templating?.list ?? [])
  .filter((v: { type: string }) => v.type === "query")
  .map((v: { query: string | { query: string } }) => (typeof v.query === "string" ? v.query : v.query.query));

describe("deploy/grafana-dashboard.json", () => {
  it("is an importable dashboard with a Prometheus datasource variable and job/instance variables", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.title).toBe("tributary");
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    const vars = new Map<string, { type: string; query: unknown }>(dashboard.templating.list.map((v: { name: string }) => [v.name, v]));
    expect(vars.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    expect(vars.get("job")).toMatchObject({ type: "query" });
    expect(vars.get("instance")).toMatchObject({ type: "query" });
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size, "panel ids are unique").toBe(ids.length);
    expect(queryPanels.length).toBeGreaterThanOrEqual(10);
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr, `${p.title} ${t.refId}`).toMatch(/\S/);
        // Every query honours the job/instance selection.
        for (const name of [...t.expr!.matchAll(METRIC)].map((m) => m[1]!)) {
          expect(t.expr, `${p.title}: ${name}`).toMatch(new RegExp(`${name}\\{[^}]*job=~"\\$job", instance=~"\\$instance"`));
        }
      }
    }
    expect(queryPanels.some((p) => p.type === "stat" && p.targets!.some((t) => /tributary_up\b/.test(t.expr!)))).toBe(true);
  });

  it("uses only metrics that a running topology exports on /metrics", async () => {
    const used = new Map<string, boolean>();
    for (const { expr } of exprs) for (const m of metricNames(expr)) used.set(m.name, used.get(m.name) || m.histogram);
    for (const q of variableQueries) for (const m of metricNames(q)) used.set(m.name, used.get(m.name) || m.histogram);
    for (const required of [
      "tributary_messages_total",
      "tributary_duplicates_total",
      "tributary_quarantined_total",
      "tributary_batch_commit_seconds",
      "tributary_end_to_end_latency_seconds",
      "tributary_consumer_pending",
    ]) {
      expect([...used.keys()], required).toContain(required);
    }
    expect(exprs.map((e) => e.expr)).toContain("sum by (layer) (rate(tributary_messages_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))");

    const dataDir = mkdtempSync(join(tmpdir(), "tributary-deploy-"));
    // The generator completes by itself, and a completed topology closes its HTTP server; NEVER
    // keeps the source (and /metrics) open until stop().
    const topology = createTopology({
      source: { kind: "observable", messages: concat(generatorSource({ messages: 2_000 }), NEVER) },
      dataDir,
      http: { host: "127.0.0.1", port: 0 },
    });
    let text: string;
    try {
      await topology.start();
      const deadline = Date.now() + 30_000;
      while (topology.stats.bronze !== 2_000) {
        if (Date.now() > deadline) throw new Error(`timed out: bronze = ${topology.stats.bronze}`);
        await sleep(50);
      }
      const res = await fetch(`http://127.0.0.1:${topology.httpAddress!.port}/metrics`);
      expect(res.status).toBe(200);
      text = await res.text();
    } finally {
      await topology.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }

    const missing = [...used].filter(([name, histogram]) => !new RegExp(`^# TYPE ${name} ${histogram ? "(histogram|summary)" : "\\w+"}$`, "m").test(text));
    expect(missing, `metrics the dashboard uses but /metrics does not export (as that type)`).toEqual([]);
    // The workload went through: the throughput panel's series carry the 2,000 messages.
    const bronze = [...text.matchAll(/^tributary_messages_total\{layer="bronze",entity="[^"]+"\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(bronze).toBe(2_000);
  });

  it("has PromQL that promtool parses", () => {
    const dir = mkdtempSync(join(tmpdir(), "tributary-promql-"));
    try {
      // Grafana's variables, replaced the way Grafana would with "All" selected.
      const concrete = (expr: string) => expr.replace(/\$__(rate_interval|interval|range)\b/g, "1m").replace(/\$\{?\w+\}?/g, ".*");
      const rules = exprs.map((e, i) => ({ record: `dashboard:panel_${i}`, expr: concrete(e.expr) }));
      const file = join(dir, "dashboard.rules.yml");
      writeFileSync(file, stringifyYaml({ groups: [{ name: "grafana-dashboard", rules }] }));
      const r = tool("promtool", ["check", "rules", file]);
      if (r === null) return; // promtool absent (it is installed in CI by .ci/run)
      expect(r.status, r.output).toBe(0);
      expect(r.output).toContain(`${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy/prometheus.yml", () => {
  it("scrapes the default http.listen address every 15s and passes promtool check config", () => {
    const config = parseYaml(readFileSync(deployFile("prometheus.yml"), "utf8"));
    const jobs: { job_name: string; scrape_interval?: string; metrics_path?: string; static_configs?: { targets: string[] }[] }[] = config.scrape_configs;
    const job = jobs.find((j) => j.job_name === "tributary");
    expect(job).toBeDefined();
    expect(job!.scrape_interval ?? config.global?.scrape_interval).toBe("15s");
    expect(job!.metrics_path ?? "/metrics").toBe("/metrics");
    expect(job!.static_configs!.flatMap((s) => s.targets)).toContain("127.0.0.1:9464");
    // The address the daemon listens on by default.
    expect(readFileSync(fileURLToPath(new URL("../tributary.example.yaml", import.meta.url)), "utf8")).toMatch(/^\s+listen: 127\.0\.0\.1:9464$/m);

    // promtool checks that the bearer token's credentials_file exists; put one beside a copy, as
    // the file is installed (/etc/prometheus/prometheus.yml beside /etc/prometheus/tributary.token).
    const dir = mkdtempSync(join(tmpdir(), "tributary-prometheus-"));
    try {
      writeFileSync(join(dir, "prometheus.yml"), readFileSync(deployFile("prometheus.yml")));
      writeFileSync(join(dir, "tributary.token"), "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
      const r = tool("promtool", ["check", "config", join(dir, "prometheus.yml")]);
      if (r === null) return; // promtool absent (it is installed in CI by .ci/run)
      expect(r.status, r.output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sends the bearer token that http.token guards /metrics with", async () => {
    const config = parseYaml(readFileSync(deployFile("prometheus.yml"), "utf8"));
    const job = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "tributary");
    expect(job.authorization).toEqual({ type: "Bearer", credentials_file: "tributary.token" });
    // What Prometheus sends (the file's content, trimmed) is what the daemon accepts.
    const token = "0123456789abcdef0123456789abcdef";
    const dataDir = mkdtempSync(join(tmpdir(), "tributary-deploy-auth-"));
    const topology = createTopology({
      source: { kind: "observable", messages: concat(generatorSource({ messages: 10 }), NEVER) },
      config: { dataDir, http: { token } },
      http: { host: "127.0.0.1", port: 0 },
    });
    try {
      await topology.start();
      const url = `http://127.0.0.1:${topology.httpAddress!.port}${job.metrics_path}`;
      expect((await fetch(url)).status).toBe(401);
      const res = await fetch(url, { headers: { authorization: `${job.authorization.type} ${token}` } });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^# TYPE tributary_up gauge$/m);
    } finally {
      await topology.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("deploy/tributary.service", () => {
  const unit = readFileSync(deployFile("tributary.service"), "utf8");

  it("runs the daemon with restarts, a clean SIGTERM stop and a hardened sandbox", () => {
    const exec = /^ExecStart=(.+)$/m.exec(unit);
    expect(exec).not.toBeNull();
    expect(exec![1]).toMatch(/dist\/src\/cli\.js run --config \/etc\/tributary\/tributary\.yaml$/);
    for (const line of [
      "Restart=on-failure",
      "RestartPreventExitStatus=2",
      "KillSignal=SIGTERM",
      "TimeoutStopSec=30",
      "User=tributary",
      "StateDirectory=tributary",
      "EnvironmentFile=-/etc/tributary/env",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/tributary",
      "PrivateTmp=yes",
    ]) {
      expect(unit, line).toMatch(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m"));
    }
    expect(unit).toMatch(/^RestartSec=\S+$/m);
    expect(unit).toMatch(/^StartLimitBurst=\d+$/m);
    expect(unit).toMatch(/^Environment=.*\bTRIBUTARY_DATA_DIR=\/var\/lib\/tributary\b/m);
    // V8's JIT needs writable+executable memory.
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=(yes|true|1)/m);
  });

  it("parses without warnings in systemd-analyze verify, where systemd is installed", () => {
    const r = tool("systemd-analyze", ["verify", deployFile("tributary.service")]);
    if (r === null) return; // no systemd on this machine
    // Only diagnostics about the file itself ("tributary.service:12: Unknown key …") count; a
    // missing node binary or user on the test machine says nothing about the unit.
    const diagnostics = r.output.split("\n").filter((l) => /tributary\.service:\d+:/.test(l));
    expect(diagnostics).toEqual([]);
  });
});
