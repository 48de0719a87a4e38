/**
 * Writes a large NDJSON file of valid transactions, for measuring `tributary ingest`'s memory on
 * inputs far bigger than any batch (the issue's 2,000,000-record check):
 *
 *   node dist/bench/ndjson-file.js /tmp/transactions-2m.ndjson --records 2000000 --customers 100000
 *   /usr/bin/time -v node dist/src/cli.js ingest /tmp/transactions-2m.ndjson --data-dir /tmp/ingest-2m
 *
 * The records are seeded and deterministic; the file name starts with the entity, as ingest expects.
 */
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { prng } from "../src/sources/generator.js";


const CURRENCIES = ["USD", "EUR", "GBP"];
const START_MS = Date.UTC(2026, 0, 1);
const SPAN_MS = 90 * 86_400_000;

/** Writes `records` transactions over `customers` customers to `file`. */
export async function writeTransactionsFile(file: string, records: number, customers: number, seed = 42): Promise<void> {
  const rand = prng(seed);
  const out = createWriteStream(file);
  for (let i = 0; i < records; i++) {
    const line = JSON.stringify({
      transaction_id: `tx-${seed}-${i}`,
      customer_id: String(1_000_000 + Math.floor(rand() * customers)),
      amount: Math.round(rand() * 50_000) / 100,
      currency: CURRENCIES[Math.floor(rand() * CURRENCIES.length)],
      transaction_date: new Date(START_MS + Math.floor((i / records) * SPAN_MS)).toISOString(),
    });
    if (!out.write(line + "\n")) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { records: { type: "string", default: "2000000" }, customers: { type: "string", default: "100000" }, seed: { type: "string", default: "42" } },
  });
  const file = positionals[0];
  if (!file) {
    process.stderr.write("usage: ndjson-file.js FILE [--records N] [--customers N] [--seed N]\n");
    process.exit(2);
  }
  await writeTransactionsFile(file, Number(values.records), Number(values.customers), Number(values.seed));
  process.stdout.write(`wrote ${values.records} transactions over ${values.customers} customers to ${file}\n`);
}
