// Prints the SQL Prisma's schema engine would run to bring the database at DATABASE_URL in line
// with a schema.prisma: the diff LiteLLM's own schema-drift repair computes and applies
// (`prisma migrate diff --from-url ... --to-schema-datamodel ... --script`). Prisma's native
// engines are not needed: this drives the WebAssembly schema engine through @prisma/adapter-pg.
// An empty diff prints "-- This is an empty migration.".
//
//   usage: DATABASE_URL=postgresql://... node drift.mjs path/to/schema.prisma
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Result from 'pg/lib/result.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg';

// Introspection selects catalog columns whose types @prisma/adapter-pg cannot map
// (prisma/orm#27403). Relabel them before pg picks a parser: scalars read as text, the two
// array types as text[]; every value then arrives as the engine expects.
const READ_AS_TEXT = new Set([18 /* "char" */, 19 /* name */, 22 /* int2vector */, 24 /* regproc */,
  30 /* oidvector */, 194 /* pg_node_tree */, 2205 /* regclass */]);
const READ_AS_TEXT_ARRAY = new Set([1002 /* "char"[] */, 1003 /* name[] */]);
const addFields = Result.prototype.addFields;
Result.prototype.addFields = function (fields) {
  for (const field of fields) {
    if (READ_AS_TEXT.has(field.dataTypeID)) field.dataTypeID = 25;
    else if (READ_AS_TEXT_ARRAY.has(field.dataTypeID)) field.dataTypeID = 1009;
  }
  return addFields.call(this, fields);
};

// The package's own entry point imports the .wasm file as a module, which Node cannot do
// without a flag: instantiate it by hand against the JavaScript glue.
const wasmFile = fileURLToPath(import.meta.resolve('@prisma/schema-engine-wasm/schema_engine_bg')).replace(/\.js$/, '.wasm');
const instance = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasmFile)), { './schema_engine_bg.js': glue });
glue.__wbg_set_wasm(instance.exports);
instance.exports.__wbindgen_start();

const schemaPath = path.resolve(process.argv[2]);
const files = [{ path: schemaPath, content: fs.readFileSync(schemaPath, 'utf8') }];
const adapter = bindMigrationAwareSqlAdapterFactory(
  new PrismaPg({ connectionString: process.env.DATABASE_URL, idleTimeoutMillis: 100 }),
);
let engine;
try {
  engine = await glue.SchemaEngine.new({ datamodels: files.map((f) => [f.path, f.content]) }, () => {}, adapter);
  // From the live database (the schema's datasource, reached through the adapter) to the schema.
  const result = await engine.diff({
    from: { tag: 'schemaDatasource', files, configDir: path.dirname(schemaPath) },
    to: { tag: 'schemaDatamodel', files },
    shadowDatabaseUrl: null,
    script: true,
    exitCode: null,
    filters: { externalTables: [], externalEnums: [] },
  });
  process.stdout.write(result.stdout ?? '');
} catch (error) {
  console.error(`prisma drift: ${error?.message ?? error}`);
  process.exitCode = 1;
} finally {
  engine?.free();
}
