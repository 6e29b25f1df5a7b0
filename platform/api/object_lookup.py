"""One visible object by primary key from SQL compiled once per shape (issue 19: the cost of
every detail request: retrieve, the verbs, the remove).

Django compiles a queryset's SQL again on every evaluation. For the gate's visible lookup of
one container (the gate's filter, two joins, a primary key) that compilation was about 0.45 ms
of a 0.6 ms lookup, the largest single part of a remove. The SQL only depends on the
queryset's shape (the viewset's queryset and the gate's restrict_key for the user), so it is
compiled once per shape, with a placeholder for the primary key, and run again afterwards;
the instances are built as Django's ModelIterable builds them (from_db, select_related's
populators, annotations).
"""

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models.query import ModelIterable, get_related_populators

# A primary key no row has (ids are positive): where it lands among the compiled SQL's
# parameters is where each lookup's primary key goes.
_PLACEHOLDER = -(2**62) - 7919
# Shapes kept per database connection.
MAX_SHAPES = 256


class _Compiled:
    """The SQL of one shape and what turns its rows into instances."""

    __slots__ = ("sql", "params", "at", "compiler", "converters", "build")

    def __init__(self, queryset):
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        self.sql, self.params, self.compiler = sql, list(params), compiler
        places = [i for i, p in enumerate(self.params) if type(p) is int and p == _PLACEHOLDER]
        self.at = places[0] if len(places) == 1 else None
        # compiler.select and klass_info were filled by as_sql().
        select, klass_info = compiler.select, compiler.klass_info
        first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in select[first:last]]
        populators = get_related_populators(klass_info, select, queryset.db)
        annotations = list(compiler.annotation_col_map.items())
        model, db = klass_info["model"], queryset.db
        self.converters = compiler.get_converters([column[0] for column in select])

        def build(row):
            obj = model.from_db(db, names, row[first:last])
            for populator in populators:
                populator.populate(row, obj)
            for name, position in annotations:
                setattr(obj, name, row[position])
            return obj

        self.build = build

    def first(self, pk: int):
        params = list(self.params)
        params[self.at] = pk
        with self.compiler.connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchmany(1)
        if not rows:
            return None
        if self.converters:
            rows = list(self.compiler.apply_converters(rows, self.converters))
        return self.build(rows[0])


def _compilable(queryset) -> bool:
    """Whether ModelIterable alone builds this queryset's objects (nothing fetched after)."""
    return (
        queryset._iterable_class is ModelIterable
        and not queryset._prefetch_related_lookups
        and not queryset._known_related_objects
        and not queryset.query.combinator
    )


def visible_by_pk(visible, model, shape, pk: int):
    """visible().filter(pk=pk).first() (visible(): the `model` queryset the gate restricted),
    from SQL compiled once per `shape`; None: no such row.

    `shape` must hold everything the SQL depends on besides the primary key: the viewset's
    class (its queryset) and the gate's restrict_key for the user; None compiles nothing."""
    if shape is None:
        return visible().filter(pk=pk).first()
    # A thread's own connection: the compiler and its converters belong to it.
    connection = connections[router.db_for_read(model)]
    shapes = connection.__dict__.setdefault("_berth_object_lookups", {})
    entry = shapes.get(shape)
    if entry is None:
        entry = _compile(visible())
        if len(shapes) >= MAX_SHAPES:
            shapes.clear()
        shapes[shape] = entry
    if entry is False:  # a shape this module cannot run (see _compile)
        return visible().filter(pk=pk).first()
    return entry.first(pk)


def _compile(queryset):
    """The shape's _Compiled, or False when its objects need more than one query's rows or
    the placeholder is not found exactly once."""
    if not _compilable(queryset):
        return False
    try:
        entry = _Compiled(queryset.filter(pk=_PLACEHOLDER).order_by()[:1])
    except EmptyResultSet:  # the gate lets the user see nothing of this kind
        return False
    return entry if entry.at is not None else False
