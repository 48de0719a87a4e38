/**
 * The package as an embedder installs it: `npm pack`, then the tarball installed in a fresh folder
 * beside its peer rxjs, imported by its published name, its command run from there.
 *
 * Offline on purpose: the fresh folder gets a lockfile built from this repository's own, so `npm ci
 * --offline` resolves every dependency from the cache that this repository's `npm ci` filled.
 * Install scripts are skipped (better-sqlite3 would otherwise compile SQLite for minutes when no
 * prebuilt binary can be downloaded); its native binding is copied from this checkout instead.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  engines: Record<string, string>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
type LockEntry = Record<string, unknown> & { dev?: boolean };
const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };

const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => statSync(join(dir, f)).isFile());
}

describe(`the packed package (${pkg.name})`, () => {
  let work: string;
  let app: string;
  let installed: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "tributary-package-"));
    // `npm test` has just built dist/ (pretest); --ignore-scripts keeps `prepare` from building again.
    const packed = JSON.parse(npm(["pack", "--ignore-scripts", "--json", "--pack-destination", work], ROOT)) as { filename: string }[];
    const tarball = join(work, packed[0]!.filename);
    app = join(work, "app");
    mkdirSync(app);
    const spec = `file:${relative(app, tarball)}`;
    const dependencies = { [pkg.name]: spec, rxjs: pkg.peerDependencies.rxjs! };
    // The package's runtime closure as this repository locked it (not dev, except the peer rxjs and its tslib).
    const packages: Record<string, LockEntry> = {
      "": { name: "app", dependencies },
      [`node_modules/${pkg.name}`]: {
        version: pkg.version,
        resolved: spec,
        integrity: `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`,
        license: pkg.license,
        dependencies: pkg.dependencies,
        peerDependencies: pkg.peerDependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
    };
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === "" || (entry.dev && path !== "node_modules/rxjs" && path !== "node_modules/tslib")) continue;
      const { dev: _dev, devOptional: _devOptional, ...rest } = entry;
      packages[path] = rest;
    }
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module", dependencies }, null, 2));
    writeFileSync(join(app, "package-lock.json"), JSON.stringify({ name: "app", lockfileVersion: 3, requires: true, packages }, null, 2));
    npm(["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], app);
    cpSync(join(ROOT, "node_modules/better-sqlite3/build/Release/better_sqlite3.node"), join(app, "node_modules/better-sqlite3/build/Release/better_sqlite3.node"));
    installed = join(app, "node_modules", pkg.name);
  }, 90_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("is not named tributary, which npm gives to an unrelated package", () => {
    expect(pkg.name).not.toBe("tributary");
    expect(Object.keys(pkg.bin)).toEqual(["tributary"]);
  });

  it("imports by its name and runs a generator topology into a fresh data dir", () => {
    const script = `
import { createTopology } from ${JSON.stringify(pkg.name)};
const t = createTopology({ source: { kind: "generator", messages: 500 }, dataDir: process.argv[2] });
await t.start();
const stats = await t.done;
const rows = t.features.all();
await t.stop();
console.log(JSON.stringify({ bronze: stats.bronze, customers: rows.length, row: rows[0] }));
`;
    writeFileSync(join(app, "embed.mjs"), script);
    const out = execFileSync(process.execPath, ["embed.mjs", join(work, "data")], { cwd: app, encoding: "utf8" });
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as { bronze: number; customers: number; row: Record<string, unknown> };
    expect(result.bronze).toBe(500);
    expect(result.customers).toBeGreaterThan(0);
    expect(result.row).toMatchObject({ customer_id: expect.any(String), purchase_frequency: expect.any(Number), total_spend: expect.any(Number) });
  });

  it("shares the embedder's rxjs (a peer dependency), not a copy of its own", () => {
    expect(existsSync(join(app, "node_modules/rxjs"))).toBe(true);
    expect(existsSync(join(installed, "node_modules/rxjs"))).toBe(false);
    const installedPkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { dependencies: Record<string, string>; peerDependencies: Record<string, string> };
    expect(installedPkg.dependencies.rxjs).toBeUndefined();
    expect(installedPkg.peerDependencies.rxjs).toMatch(/^\^7\./);
  });

  it("ships no test helpers, and no published module imports them", () => {
    expect(existsSync(join(installed, "dist/src/testing"))).toBe(false);
    expect(existsSync(join(installed, "dist/src/index.js"))).toBe(true);
    const modules = filesUnder(join(installed, "dist/src")).filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"));
    expect(modules.length).toBeGreaterThan(10);
    for (const f of modules) expect(readFileSync(join(installed, "dist/src", f), "utf8"), f).not.toMatch(/from\s+["'][^"']*testing\//);
  });

  it("installs the tributary command", () => {
    const version = execFileSync("npx", ["--offline", "--no", "--", "tributary", "--version"], { cwd: app, encoding: "utf8" });
    expect(version.trim()).toBe(pkg.version);
  });
});
