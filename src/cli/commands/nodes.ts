import { parseArgs } from '../parse-args.ts';
import { formatPortType } from '../../graph/ports.ts';
import { nodeDefinitionsJson, type NodeDefinitionJson } from '../../graph/node.ts';
import { registry } from '../../../nodes/index.ts';
import { UsageError, type Command } from '../command.ts';

interface ParamSchema {
  type?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  description?: string;
  anyOf?: ParamSchema[];
  items?: ParamSchema;
  'x-path'?: { kind: string; mode: string };
}

function typeText(s: ParamSchema): string {
  if (s['x-path']) return `${s['x-path'].mode === 'write' ? 'output' : 'input'} file (${s['x-path'].kind} root)`;
  if (s.enum) return s.enum.map(String).join('|');
  if (s.anyOf) return s.anyOf.map(typeText).join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeText(s.items) : 'values'}`;
  const lo = s.minimum !== undefined ? String(s.minimum) : s.exclusiveMinimum !== undefined ? `>${s.exclusiveMinimum}` : '';
  const hi = s.maximum !== undefined ? String(s.maximum) : '';
  const range = lo || hi ? ` ${lo}…${hi}` : '';
  return `${s.type ?? 'value'}${range}`;
}

function describeNode(d: NodeDefinitionJson): string {
  const lines = [`${d.type} v${d.v}  ${d.title}  [${d.category}]${d.output ? '  (writes files)' : ''}`, `  ${d.description}`];
  for (const [name, p] of Object.entries(d.inputs)) lines.push(`  in    ${name}: ${formatPortType(p.type)}${p.list ? ' (list)' : ''}${p.optional ? ' (optional)' : ''}`);
  for (const [name, p] of Object.entries(d.outputs)) lines.push(`  out   ${name}: ${p.type}`);
  const props = (d.paramsSchema.properties ?? {}) as Record<string, ParamSchema>;
  const required = new Set((d.paramsSchema.required ?? []) as string[]);
  for (const name of d.paramOrder) {
    const s = props[name]!;
    const dflt = s.default !== undefined ? ` = ${JSON.stringify(s.default)}` : required.has(name) ? ' (required)' : ' (optional)';
    lines.push(`  param ${name}: ${typeText(s)}${dflt}${s.description ? `  — ${s.description}` : ''}`);
  }
  return lines.join('\n');
}

export const nodes: Command = {
  name: 'nodes',
  summary: 'List the node types recipes can use (ports, params, defaults)',
  usage: `loraflow nodes [TYPE…] [--json]

Lists every node type with its inputs, outputs and params (types, defaults, ranges).
--json prints the definitions as the editor receives them (params as JSON Schema).`,

  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
    const unknown = positionals.filter((t) => !registry.has(t));
    if (unknown.length > 0) throw new UsageError(`unknown node type${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${registry.types().join(', ')})`);
    const defs = nodeDefinitionsJson(registry.list().filter((d) => positionals.length === 0 || positionals.includes(d.type)));
    process.stdout.write(values.json ? `${JSON.stringify(defs, null, 2)}\n` : `${Object.values(defs).map(describeNode).join('\n\n')}\n`);
    return 0;
  },
};
