/** Temporary directories for a test file, removed after it. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

/** Returns a function that makes a new temp dir (prefix `tributary-<name>-`); all are removed after the file's tests. */
export function tempDirs(name: string): () => string {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  return () => {
    const d = mkdtempSync(join(tmpdir(), `tributary-${name}-`));
    dirs.push(d);
    return d;
  };
}
