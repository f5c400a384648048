/**
 * Server reflection that generic clients can link (ADR 0012). proto-loader merges the .proto files of
 * one package into one descriptor ("google_rpc.proto") whose type references are relative
 * ("protobuf.Duration") and whose import list is empty. Clients that link descriptors strictly (Go's
 * protodesc, hence grpcurl) then cannot resolve a type of another package: `google.rpc.BadRequest`
 * in an error's details came out as "not recognized". Here every reference is made fully qualified
 * and every file names the files it refers to, map entry types and JSON names are what protoc
 * writes, before the reflection service indexes them.
 */
import { createRequire } from 'node:module';
import type { PackageDefinition } from '@grpc/proto-loader';

// protobufjs's descriptor extension (CommonJS, no ESM entry): FileDescriptorProto encode/decode.
const require = createRequire(import.meta.url);
interface FieldLike {
  name?: string;
  typeName?: string;
  jsonName?: string;
}
interface MessageLike {
  name?: string;
  options?: { mapEntry?: boolean };
  field?: FieldLike[];
  nestedType?: MessageLike[];
  enumType?: { name?: string }[];
}
interface FileLike {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageLike[];
  enumType?: { name?: string }[];
  service?: { name?: string; method?: { inputType?: string; outputType?: string }[] }[];
}
interface Codec {
  decode(b: Uint8Array): FileLike;
  encode(f: FileLike): { finish(): Uint8Array };
}
const { FileDescriptorProto } = require('protobufjs/ext/descriptor') as { FileDescriptorProto: Codec };

/** protoc's JSON name of a field (proto3 JSON mapping): `decision_id` -> `decisionId`. */
function jsonNameOf(field: string): string {
  return field.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()).replace(/_/g, '');
}

/** The name protoc gives a map field's entry type: `metadata` -> `MetadataEntry`. */
function mapEntryName(field: string): string {
  const camel = jsonNameOf(field);
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

/** Renames map entry types as protoc does (strict clients check the name) and their references. */
function nameMapEntries(m: MessageLike): void {
  for (const fl of m.field ?? []) {
    const entry = (m.nestedType ?? []).find((n) => n.options?.mapEntry === true && n.name === fl.typeName);
    if (entry === undefined || fl.name === undefined) continue;
    entry.name = mapEntryName(fl.name);
    fl.typeName = entry.name;
  }
  for (const n of m.nestedType ?? []) nameMapEntries(n);
}

/** Fully qualified name (no leading dot) -> the file that defines it. */
function indexSymbols(files: Map<string, FileLike>): Map<string, string> {
  const symbols = new Map<string, string>();
  const addMessage = (scope: string, m: MessageLike, file: string) => {
    const fqn = `${scope}${m.name ?? ''}`;
    symbols.set(fqn, file);
    for (const n of m.nestedType ?? []) addMessage(`${fqn}.`, n, file);
    for (const e of m.enumType ?? []) symbols.set(`${fqn}.${e.name ?? ''}`, file);
  };
  for (const [name, f] of files) {
    const scope = f.package ? `${f.package}.` : '';
    for (const m of f.messageType ?? []) addMessage(scope, m, name);
    for (const e of f.enumType ?? []) symbols.set(`${scope}${e.name ?? ''}`, name);
  }
  return symbols;
}

/**
 * Resolves `ref` as protobuf scoping does (innermost scope first) from `scope` (a fully qualified
 * message or package name); returns the fully qualified name, or undefined.
 */
function resolve(ref: string, scope: string, symbols: Map<string, string>): string | undefined {
  if (ref.startsWith('.')) return symbols.has(ref.slice(1)) ? ref.slice(1) : undefined;
  for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
    const candidate = s === '' ? ref : `${s}.${ref}`;
    if (symbols.has(candidate)) return candidate;
    if (s === '') return undefined;
  }
}

/** A copy of `pkg` whose file descriptors have absolute type references and their imports listed. */
export function linkableDescriptors(pkg: PackageDefinition): PackageDefinition {
  const files = new Map<string, FileLike>();
  // The file name of every descriptor as given (each message type carries its file's and its imports').
  const nameOf = new Map<Buffer, string | undefined>();
  for (const def of Object.values(pkg)) {
    const protos = (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
    for (const bin of protos ?? []) {
      if (nameOf.has(bin)) continue;
      const f = FileDescriptorProto.decode(bin);
      nameOf.set(bin, f.name);
      if (f.name !== undefined && !files.has(f.name)) files.set(f.name, f);
    }
  }
  for (const f of files.values()) for (const m of f.messageType ?? []) nameMapEntries(m);
  const symbols = indexSymbols(files);
  const encoded = new Map<string, Buffer>();
  for (const [name, f] of files) {
    const deps = new Set(f.dependency ?? []);
    const fix = (ref: string | undefined, scope: string): string | undefined => {
      if (ref === undefined || ref === '') return ref;
      const fqn = resolve(ref, scope, symbols);
      if (fqn === undefined) return ref; // a scalar or an unknown name: left as proto-loader wrote it
      const owner = symbols.get(fqn) as string;
      if (owner !== name) deps.add(owner);
      return `.${fqn}`;
    };
    const visit = (scope: string, m: MessageLike) => {
      const fqn = `${scope}${m.name ?? ''}`;
      for (const fl of m.field ?? []) {
        fl.typeName = fix(fl.typeName, fqn);
        if (fl.name !== undefined) fl.jsonName = jsonNameOf(fl.name); // as protoc fills it in
      }
      for (const n of m.nestedType ?? []) visit(`${fqn}.`, n);
    };
    const pkgScope = f.package ? `${f.package}.` : '';
    for (const m of f.messageType ?? []) visit(pkgScope, m);
    for (const s of f.service ?? [])
      for (const m of s.method ?? []) {
        m.inputType = fix(m.inputType, f.package ?? '');
        m.outputType = fix(m.outputType, f.package ?? '');
      }
    f.dependency = [...deps];
    encoded.set(name, Buffer.from(FileDescriptorProto.encode(f).finish()));
  }
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(pkg)) {
    const protos = (def as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
    out[key] =
      protos === undefined
        ? def
        : {
            ...def,
            fileDescriptorProtos: protos.map((b) => {
              const n = nameOf.get(b);
              return (n !== undefined && encoded.get(n)) || b;
            }),
          };
  }
  return out as PackageDefinition;
}
