/**
 * How the tributary process should be started. Node lets the V8 heap grow to about a quarter of
 * the machine's memory before it collects old garbage in earnest, so without a bound a busy
 * pipeline shows hundreds of MB of resident memory that is mostly uncollected garbage. The live
 * heap is small (tens of MB at a million customers); the dedupe window and SQLite's page caches
 * live outside the V8 heap and are bounded by `dedupe.maxEntries` and the per-layer cache sizes.
 *
 * The `tributary` command starts Node with these flags (its shebang, `npm start`, the systemd
 * unit), and the benchmark runs tributary with them. An edge service that embeds tributary
 * should start its own process with them, e.g. `node --max-old-space-size=256 --max-semi-space-size=8 service.js`.
 *
 * The young generation's semi-spaces are capped at 8 MB (V8's default is 16): at 1M customers and
 * 1M dedupe ids that took peak RSS from 308-318 MB to 258-260 MB for about 5% more CPU per event.
 */
export const RECOMMENDED_NODE_FLAGS: readonly string[] = ["--max-old-space-size=256", "--max-semi-space-size=8"];
