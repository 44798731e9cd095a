// Text a GraphQL request hands to the database must be text PostgreSQL stores (no NUL, no unpaired
// surrogate), as REST's validation requires of every string: checked once for the whole request,
// in its variables and in the string literals of its document, before any resolver runs.
import { unstorableText } from '@connect/http';
import { type DocumentNode, Kind, type ValueNode, visit } from 'graphql';
import mercurius from 'mercurius';

const { ErrorWithProps } = mercurius;

function literalProblems(value: ValueNode, path: string): { path: string; message: string }[] {
  if (value.kind === Kind.STRING)
    return unstorableText(value.value).map(({ message }) => ({ path, message }));
  if (value.kind === Kind.LIST)
    return value.values.flatMap((item, i) => literalProblems(item, `${path}.${i}`));
  if (value.kind === Kind.OBJECT)
    return value.fields.flatMap((field) => literalProblems(field.value, `${path}.${field.name.value}`));
  return [];
}

/** BAD_USER_INPUT naming the first argument or variable whose text is not storable. */
export function refuseUnstorableText(document: DocumentNode, variables: Record<string, unknown> = {}): void {
  const problems = unstorableText(variables).map(({ path, message }) => ({ path: `$${path}`, message }));
  visit(document, {
    Argument(argument) {
      problems.push(...literalProblems(argument.value, argument.name.value));
    },
    VariableDefinition(definition) {
      if (definition.defaultValue)
        problems.push(...literalProblems(definition.defaultValue, `$${definition.variable.name.value}`));
    },
  });
  const first = problems[0];
  if (first) {
    throw new ErrorWithProps(`${first.path}: ${first.message}`, {
      code: 'BAD_USER_INPUT',
      field: first.path,
    });
  }
}
