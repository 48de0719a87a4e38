/** Runs the built `tributary` CLI as a child process, as a user would. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI; returns the process and a promise of its result. */
export function startCli(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; result: Promise<CliResult> } {
  const proc = spawn(process.execPath, [CLI, ...args], {
    // No HTTP unless a test asks for it: test files run in parallel, and the default address
    // (127.0.0.1:9464) would be contended. `--http` and an explicit env still win.
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: process.env.TRIBUTARY_TEST_LOG_LEVEL ?? "warn", TRIBUTARY_HTTP_LISTEN: "off", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d) => (stdout += d));
  proc.stderr!.on("data", (d) => (stderr += d));
  const result = new Promise<CliResult>((resolve) => proc.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { proc, result };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).result;
}
