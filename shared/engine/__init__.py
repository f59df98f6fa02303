"""The sync engine: canonical entities, declarative mapping, dedupe, three-way merge, lean writes.

- :mod:`~shared.engine.canonical`: the seven canonical types, their dedupe configuration and
  the normalizers of natural keys (email, domain, phone) and names.
- :mod:`~shared.engine.mapping`: a stream's :class:`~adapters.base.spec.MappingSpec` compiled
  into a fast mapper (fields, transforms, links, derived records, hook).
- :mod:`~shared.engine.merge`: the three-way field merge and the six conflict strategies.
- :mod:`~shared.engine.pipeline`: one page through mapping, dedupe, conflict detection and one
  batched write (the lean write path).
- :mod:`~shared.engine.entities`: the canonical entity view, links both ways, conflicts,
  merge proposals, splits and local changes.
"""
