/** What the numbers came from: CPU, memory, Node and nats-server versions, load at start. */
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg, platform, release, totalmem } from "node:os";
import { execFileSync } from "node:child_process";

export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly os: string;
  readonly node: string;
  readonly natsServer: string;
  readonly loadAverageAtStart: number[];
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return "unknown";
}

/** Reads the machine description; `natsVersion` is the version the server announced, when known. */
export function machineInfo(natsVersion?: string): MachineInfo {
  let nats = natsVersion ?? "";
  if (!nats) {
    try {
      nats = execFileSync("nats-server", ["--version"], { encoding: "utf8" }).trim().replace(/^nats-server:\s*v?/, "");
    } catch {
      nats = "unknown";
    }
  }
  return {
    cpus: availableParallelism(),
    cpuModel: cpuModel(),
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    natsServer: nats,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** One line: "2 × AMD EPYC, 23.5 GB, Node v20.20.2, nats-server 2.9.10". */
export function describeMachine(m: MachineInfo): string {
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB RAM, ${m.os}, Node ${m.node}, nats-server ${m.natsServer}`;
}
