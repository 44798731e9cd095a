// A query's cost: every field selected costs 1 for each object it is fetched for, and a connection
// multiplies what is below it by its page size.
import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

export const MAX_COST = 10_000;
const DEFAULT_PAGE = 20;

function pageSize(field: FieldNode, variables: Record<string, unknown>): number {
  const first = field.arguments?.find((arg) => arg.name.value === 'first')?.value;
  const value = (node: ValueNode | undefined): unknown =>
    node?.kind === Kind.INT
      ? Number(node.value)
      : node?.kind === Kind.VARIABLE
        ? variables[node.name.value]
        : undefined;
  const size = value(first);
  return typeof size === 'number' && size > 0 ? size : DEFAULT_PAGE;
}

export function costOf(
  selections: SelectionSetNode | undefined,
  fragments: Record<string, FragmentDefinitionNode>,
  variables: Record<string, unknown>,
  seen: Set<string> = new Set(),
): number {
  let cost = 0;
  for (const selection of selections?.selections ?? []) {
    if (selection.kind === Kind.FIELD) {
      const multiplier = selection.name.value === 'commitments' ? pageSize(selection, variables) : 1;
      cost += 1 + multiplier * costOf(selection.selectionSet, fragments, variables, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      cost += costOf(selection.selectionSet, fragments, variables, seen);
    } else {
      const name = selection.name.value;
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue; // unknown or cyclic fragments fail validation anyway
      cost += costOf(fragment.selectionSet, fragments, variables, new Set([...seen, name]));
    }
  }
  return cost;
}

/** The cost of the most costly operation in a document. */
export function documentCost(document: DocumentNode, variables: Record<string, unknown> = {}): number {
  const fragments = Object.fromEntries(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  const costs = document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => costOf(operation.selectionSet, fragments, variables));
  return Math.max(0, ...costs);
}
