/** An in-memory DuckDB for a test file: the independent reader of the Parquet and CSV files tributary writes. */
import { afterAll, beforeAll } from "vitest";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";

/** Opens DuckDB before the file's tests and closes it after; returns the connection's getter. */
export function useDuckDB(): () => DuckDBConnection {
  let instance: DuckDBInstance | undefined;
  let connection: DuckDBConnection | undefined;
  beforeAll(async () => {
    instance = await DuckDBInstance.create(":memory:");
    connection = await instance.connect();
  });
  afterAll(() => {
    connection?.closeSync();
    instance?.closeSync();
  });
  return () => {
    if (connection === undefined) throw new Error("DuckDB is opened in beforeAll");
    return connection;
  };
}
