// metav1.Status bodies exactly as kube-apiserver writes them for the failures the double models.

export interface StatusBody {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason: string;
  readonly details?: Record<string, unknown>;
  readonly code: number;
}

export interface ResourceRef {
  /** Plural resource, e.g. `pods`, `leases`. */
  readonly resource: string;
  /** API group, '' for core. */
  readonly group: string;
  readonly name?: string | undefined;
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): StatusBody {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details === undefined ? {} : { details }), code };
}

/** `pods` or `leases.coordination.k8s.io`, as the API server qualifies a resource in messages. */
export function qualified(ref: ResourceRef): string {
  return ref.group === '' ? ref.resource : `${ref.resource}.${ref.group}`;
}

function details(ref: ResourceRef): Record<string, unknown> {
  return {
    ...(ref.name === undefined ? {} : { name: ref.name }),
    ...(ref.group === '' ? {} : { group: ref.group }),
    kind: ref.resource,
  };
}

export function notFound(ref: ResourceRef): StatusBody {
  return status(404, 'NotFound', `${qualified(ref)} "${ref.name ?? ''}" not found`, details(ref));
}

export function alreadyExists(ref: ResourceRef): StatusBody {
  return status(409, 'AlreadyExists', `${qualified(ref)} "${ref.name ?? ''}" already exists`, details(ref));
}

export function conflict(ref: ResourceRef): StatusBody {
  return status(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(ref)} "${ref.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`,
    details(ref),
  );
}

export function uidConflict(ref: ResourceRef, wanted: string, actual: string): StatusBody {
  return status(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(ref)} "${ref.name ?? ''}": Precondition failed: UID in precondition: ${wanted}, UID in object meta: ${actual}`,
    details(ref),
  );
}

/** `subresource` names e.g. `scale`: the subject stays the resource, the refused one is `statefulsets/scale`. */
export function forbidden(ref: ResourceRef, user: string, verb: string, namespace: string | null, subresource?: string): StatusBody {
  const subject = ref.name === undefined ? qualified(ref) : `${qualified(ref)} "${ref.name}"`;
  const scope = namespace === null ? 'at the cluster scope' : `in the namespace "${namespace}"`;
  const resource = subresource === undefined ? ref.resource : `${ref.resource}/${subresource}`;
  return status(
    403,
    'Forbidden',
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${ref.group}" ${scope}`,
    details(ref),
  );
}

export function unauthorized(): StatusBody {
  return status(401, 'Unauthorized', 'Unauthorized');
}

export function unsupportedMediaType(contentType: string, accepted: readonly string[]): StatusBody {
  return status(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format (${contentType || 'no Content-Type'}) - accepted media types include: ${accepted.join(', ')}`,
  );
}

export function badRequest(message: string): StatusBody {
  return status(400, 'BadRequest', message);
}

export function invalid(kind: string, ref: ResourceRef, causes: readonly { field: string; message: string }[]): StatusBody {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return status(422, 'Invalid', `${kind} "${ref.name ?? ''}" is invalid: ${text}`, {
    ...details(ref),
    kind,
    causes: causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}

export function methodNotAllowed(): StatusBody {
  return status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function pathNotFound(): StatusBody {
  return status(404, 'NotFound', 'the server could not find the requested resource');
}

export function tooManyRequests(retryAfterSeconds: number): StatusBody {
  return status(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds });
}

export function internalError(message: string): StatusBody {
  return status(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}
