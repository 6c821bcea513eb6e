// The official SpacetimeDB TypeScript SDK (1.3.3) on the same workloads as our SDK.
//
//   node bench.mjs URI DATABASE subscribe QUERY ROWS ROUNDS
//   node bench.mjs URI DATABASE calls CALLS ROUNDS
//
// Prints one JSON object: best-of-ROUNDS seconds for each figure. The SDK needs
// bindings for the module; `spacetime generate` would write them, but the CLI is
// not built here, so the few this benchmark uses are made at run time from the
// database's own schema (/v1/database/:name/schema?version=9), in the shape the
// generator writes (RemoteModule, RemoteTables, RemoteReducers).

import {
  AlgebraicType,
  BinaryWriter,
  DbConnectionBuilder,
  DbConnectionImpl,
  ProductTypeElement,
  SumTypeVariant,
} from "@clockworklabs/spacetimedb-sdk";

const [uri, database, mode, ...rest] = process.argv.slice(2);

// --- bindings from the schema ---------------------------------------------------------

const PRIMITIVES = {
  Bool: () => AlgebraicType.createBoolType(),
  I8: () => AlgebraicType.createI8Type(),
  U8: () => AlgebraicType.createU8Type(),
  I16: () => AlgebraicType.createI16Type(),
  U16: () => AlgebraicType.createU16Type(),
  I32: () => AlgebraicType.createI32Type(),
  U32: () => AlgebraicType.createU32Type(),
  I64: () => AlgebraicType.createI64Type(),
  U64: () => AlgebraicType.createU64Type(),
  I128: () => AlgebraicType.createI128Type(),
  U128: () => AlgebraicType.createU128Type(),
  I256: () => AlgebraicType.createI256Type(),
  U256: () => AlgebraicType.createU256Type(),
  F32: () => AlgebraicType.createF32Type(),
  F64: () => AlgebraicType.createF64Type(),
  String: () => AlgebraicType.createStringType(),
};

const nameOf = (name) => name.some ?? "";

function toType(json, typespace) {
  const [tag, value] = Object.entries(json)[0];
  if (tag in PRIMITIVES) return PRIMITIVES[tag]();
  switch (tag) {
    case "Ref":
      return toType(typespace[value], typespace);
    case "Array":
      return AlgebraicType.createArrayType(toType(value, typespace));
    case "Product":
      return AlgebraicType.createProductType(
        value.elements.map(
          (e) => new ProductTypeElement(nameOf(e.name), toType(e.algebraic_type, typespace)),
        ),
      );
    case "Sum":
      return AlgebraicType.createSumType(
        value.variants.map(
          (v) => new SumTypeVariant(nameOf(v.name), toType(v.algebraic_type, typespace)),
        ),
      );
    default:
      throw new Error(`no TypeScript type for SATS ${tag}`);
  }
}

async function remoteModule(tableNames, reducerNames) {
  const response = await fetch(new URL(`v1/database/${database}/schema?version=9`, uri));
  if (!response.ok) throw new Error(`schema: ${response.status} ${await response.text()}`);
  const schema = await response.json();
  const typespace = schema.typespace.types;
  const tables = {};
  for (const name of tableNames) {
    const table = schema.tables.find((t) => t.name === name);
    const rowType = toType({ Ref: table.product_type_ref }, typespace);
    const key = table.primary_key[0];
    tables[name] = {
      tableName: name,
      rowType,
      primaryKeyInfo:
        key === undefined
          ? undefined
          : {
              colName: rowType.product.elements[key].name,
              colType: rowType.product.elements[key].algebraicType,
            },
    };
  }
  const reducers = {};
  for (const name of reducerNames) {
    const reducer = schema.reducers.find((r) => r.name === name);
    reducers[name] = { reducerName: name, argsType: toType({ Product: reducer.params }, typespace) };
  }
  class RemoteTables {
    constructor(connection) {
      for (const name of tableNames) {
        Object.defineProperty(this, name, {
          get: () => connection.clientCache.getOrCreateTable(tables[name]),
        });
      }
    }
  }
  class RemoteReducers {
    constructor(connection) {
      this.connection = connection;
    }
    call(name, args) {
      const writer = new BinaryWriter(1024);
      reducers[name].argsType.serialize(writer, args);
      this.connection.callReducer(name, writer.getBuffer(), "FullUpdate");
    }
  }
  return {
    tables,
    reducers,
    eventContextConstructor: (imp, event) => ({ ...imp, event }),
    dbViewConstructor: (imp) => new RemoteTables(imp),
    reducersConstructor: (imp) => new RemoteReducers(imp),
    setReducerFlagsConstructor: () => ({}),
    // The SDK refuses bindings from a CLI older than 1.2.0; these follow 1.2.0's shape.
    versionInfo: { cliVersion: "1.2.0" },
  };
}

function connect(module) {
  return new Promise((resolve, reject) => {
    new DbConnectionBuilder(module, (imp) => imp)
      .withUri(uri)
      .withModuleName(database)
      .withCompression("gzip")
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(conn, query) {
  return new Promise((resolve, reject) => {
    conn
      .subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) => reject(ctx.event ?? new Error("subscription failed")))
      .subscribe([query]);
  });
}

const best = (times) => Math.min(...times);
const now = () => performance.now() / 1000;

// --- the workloads --------------------------------------------------------------------

async function benchSubscribe(query, rows, rounds) {
  const module = await remoteModule(["message"], []);
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const conn = await connect(module);
    const t0 = now();
    await subscribe(conn, query);
    times.push(now() - t0);
    const count = conn.db.message.count();
    if (count !== rows) throw new Error(`expected ${rows} rows in the cache, found ${count}`);
    conn.disconnect();
  }
  return { subscribe: best(times) };
}

// Each round connects afresh (a new identity), as bench_sdk.py does: the module caps
// the conversations one identity holds (10,000), which a few rounds would reach.
async function benchCalls(calls, rounds) {
  const module = await remoteModule(["conversation"], ["create_conversation"]);
  const noKey = { client: 0n, seq: 0n };
  const pipe = [];
  const seq = [];
  const cpu = [];
  for (let r = 0; r < rounds; r++) {
    const conn = await connect(module);
    await subscribe(conn, "SELECT * FROM conversation");
    let done = 0;
    let wake = null;
    conn.onReducer("create_conversation", (ctx) => {
      if (ctx.event.status.tag !== "Committed") throw new Error(JSON.stringify(ctx.event.status));
      done += 1;
      if (wake) wake();
    });
    const until = (n) =>
      new Promise((resolve) => {
        wake = () => done >= n && resolve();
        wake();
      });
    const create = (title) =>
      conn.reducers.call("create_conversation", { call_key: noKey, title });
    for (let i = 0; i < 20; i++) {
      // Warm up the connection and the module, as the Python benchmark does.
      create(`warm ${i}`);
      await until(done + 1);
    }
    const cpu0 = process.cpuUsage();
    const t0 = now();
    const target = done + calls;
    for (let i = 0; i < calls; i++) create(`ts pipe ${r}.${i}`);
    await until(target);
    pipe.push(now() - t0);
    const used = process.cpuUsage(cpu0);
    cpu.push((used.user + used.system) / 1e6 / calls);

    const n = Math.floor(calls / 4);
    const t1 = now();
    for (let i = 0; i < n; i++) {
      create(`ts seq ${r}.${i}`);
      await until(done + 1);
    }
    seq.push((now() - t1) / n);
    conn.disconnect();
  }
  return { pipe: best(pipe), seq: best(seq), cpu: best(cpu) };
}

const result =
  mode === "subscribe"
    ? await benchSubscribe(rest[0], Number(rest[1]), Number(rest[2]))
    : await benchCalls(Number(rest[0]), Number(rest[1]));
console.log(JSON.stringify(result));
process.exit(0);
