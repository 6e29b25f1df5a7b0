"""Pages of the container list with their total in one query (issue 15: the list's cost), at a
cost that does not grow with the rows past the page (issue 19)."""

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import DateTimeField, IntegerField, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from psycopg.pq import Format
from psycopg.types.string import TextLoader
from rest_framework.settings import api_settings

from api.pagination import Pagination


class _CountOf(Subquery):
    """The number of rows of a queryset, as a scalar subquery column of another query.

    The page's total used to be a window count (COUNT(*) OVER ()), which makes the database
    build and sort every matching row in full before it keeps the page: the default page cost
    2.8 ms at 10 containers and 8.4 ms at 1,000 (issue 19). An uncorrelated subquery is run
    once, over the ids alone, and the page's own ORDER BY ... LIMIT keeps only its rows."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) AS counted)"
    output_field = IntegerField()

    def __init__(self, queryset):
        super().__init__(queryset.order_by().values("pk"))


def _with_total(queryset, counted=None):
    """`queryset` (a values_list()) with the number of its rows as a last column; `counted`:
    the same rows without the joins the page's columns need (the count's cheaper query)."""
    return queryset.annotate(_total=_CountOf(queryset if counted is None else counted))


class _Total:
    """What Django's Paginator needs of a list whose total is already known."""

    def __init__(self, total: int):
        self.total = total

    def count(self) -> int:
        return self.total

    def __getitem__(self, _):
        return []  # the page's rows were read with the total


# Shapes of compiled list pages kept per database connection.
MAX_SHAPES = 256
# Rendered rows kept per process (RowCache).
MAX_ROWS = 4096
# Rendered pages kept per process (PageCache).
MAX_PAGES = 512
# The largest row offset asked of the database (SQL integers are 64-bit).
MAX_OFFSET = 2**62


class RowCache:
    """Rendered list rows keyed by the row exactly as the database sent it (every column the
    row shows, before any decoding) and the connection's time zone: a row changed in any
    column is another key, so an answer is never stale, and an unchanged row is neither
    decoded (its JSON columns, its converters) nor rendered again (about a fifth of a list
    request's CPU, issue 15). The rendered rows are shared between answers: read-only."""

    def __init__(self, size: int = MAX_ROWS):
        self.size = size
        self.rows: dict = {}

    def render(self, raw_rows, namespace, convert, render) -> list:
        """`render(convert(raw))` of each raw row, from the cache where it has it."""
        cached, out, missing = self.rows, [], []
        for raw in raw_rows:
            key = (namespace, raw)
            try:
                row = cached.get(key)
            except TypeError:  # a value that cannot be a key: no cache for this page
                return [render(values) for values in convert(raw_rows)]
            if row is None:
                missing.append((len(out), key))
            out.append(row)
        if missing:
            fresh = convert([key[1] for _, key in missing])
            if len(cached) + len(missing) > self.size:
                cached.clear()  # rarely: more rows shown than kept; they come back as asked
            for (index, key), values in zip(missing, fresh, strict=True):
                out[index] = cached[key] = render(values)
        return out


ROW_CACHE = RowCache()


class PageCache:
    """Rendered pages (their total and rows, read-only) keyed by the database, the page's
    shape, size and number, the list's version token and the rows' namespace: a token that
    changed is another key, so a page is never answered from rows older than its token."""

    def __init__(self, size: int = MAX_PAGES):
        self.size = size
        self.pages: dict = {}

    def get(self, key):
        return self.pages.get(key)

    def put(self, key, page) -> None:
        if len(self.pages) >= self.size:
            self.pages.clear()  # old tokens' pages are never asked for again
        self.pages[key] = page


PAGES = PageCache()


def _namespace(render, connection) -> tuple:
    """Everything besides the row a rendered row depends on (date-times' zones, format)."""
    return (
        render,
        connection.vendor,
        connection.timezone_name,
        settings.TIME_ZONE,
        timezone.get_current_timezone(),  # (its name costs a lookup per request)
        api_settings.DATETIME_FORMAT,
    )


TIMESTAMPTZ_OID = 1184  # PostgreSQL's timestamp with time zone


class _StoredText(Cast):
    """A date-time column read as the text SQLite stores (an expression has no declared type,
    so the sqlite3 module's converter does not parse it on every read: at 1,000 containers,
    parsing the default page's date-times was a fifth of a list request, issue 19)."""

    def __init__(self, name: str):
        super().__init__(name, output_field=TextField())


def _field(model, name: str):
    """The model field a values_list() name reads ("health__updated_at", "team_id")."""
    *path, last = name.split("__")
    opts = model._meta
    for part in path:
        opts = opts.get_field(part).related_model._meta
    return opts.get_field(last)


def _sqlite_text_times(queryset):
    """`queryset` (a values_list() of field names) with its date-time columns as _StoredText,
    and their positions (None: it has none)."""
    names = list(queryset._fields)
    times = [
        i for i, name in enumerate(names) if isinstance(_field(queryset.model, name), DateTimeField)
    ]
    if not times:
        return queryset, None
    columns = [_StoredText(name) if i in times else name for i, name in enumerate(names)]
    return queryset.values_list(*columns), times


def _time_parser(connection):
    """How the connection turns a date-time's text into the value the ORM would read: on
    PostgreSQL its own loader (the one Django registers, in the connection's time zone), on
    SQLite the backend's converter (aware, in the connection's time zone)."""
    if connection.vendor == "postgresql":
        raw = connection.connection
        loader = raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)(TIMESTAMPTZ_OID, raw)
        return lambda text: loader.load(text.encode())
    convert = connection.ops.convert_datetimefield_value
    return lambda text: convert(text, None, connection)


def _parse_times(connection, rows, positions) -> list[list]:
    """`rows` with the date-time texts at `positions` parsed as fetchall() would have."""
    parse = _time_parser(connection)
    out = []
    for row in rows:
        row = list(row)
        for i in positions:
            if row[i] is not None:
                row[i] = parse(row[i])
        out.append(row)
    return out


class OneQueryPagination(Pagination):
    """Page-number pages as api.pagination.Pagination answers them, but a page of rows and
    the number of rows come from one query (a count subquery over the filtered rows) instead
    of a COUNT and a SELECT. Anything but a page with rows (no rows, a page past the end,
    `?page=last`, a page that is not a number) is left to the parent's two queries, so its
    answers (an empty first page, 404 "Invalid page.") stay the same.

    The queryset is a values_list(); each row gets the total as a last column, taken off here.
    """

    def paginate_queryset(self, queryset, request, view=None):
        page_size = self.get_page_size(request)
        number = self._plain_number(request, page_size)
        if number is None:
            return super().paginate_queryset(queryset, request, view)
        start = (number - 1) * page_size
        rows = list(_with_total(queryset)[start : start + page_size])
        if not rows:
            return super().paginate_queryset(queryset, request, view)
        return self._page(rows, number, page_size, request)

    def _plain_number(self, request, page_size) -> int | None:
        """The asked page's number when it is a plain positive number whose rows the database
        can be asked for; None for anything else (no page size, `last`, a hostile number whose
        offset no SQL integer holds), which Django's paginator answers (404 "Invalid page.")
        without an offset."""
        number = request.query_params.get(self.page_query_param) or "1"
        if not page_size or not number.isascii() or not number.isdigit() or len(number) > 18:
            return None
        number = int(number)
        if number < 1 or (number - 1) * page_size > MAX_OFFSET:
            return None
        return number

    def _page(self, rows, number, page_size, request):
        return self._page_of(rows[0][-1], [row[:-1] for row in rows], number, page_size, request)

    def _page_of(self, total, object_list, number, page_size, request):
        paginator = self.django_paginator_class(_Total(total), page_size)
        self.page = paginator.page(number)
        self.page.object_list = object_list
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        self.request = request
        return list(self.page.object_list)

    def paginate_compiled(
        self, build, model, shape, request, render=None, count=None, version=None
    ):
        """The asked page's rows as paginate_queryset(build()) gives them (each passed through
        `render`, when given, by way of ROW_CACHE: `render` must depend on nothing but the
        row's values and the settings), from SQL compiled
        once per shape and run again afterwards (building and compiling the queryset cost
        about a tenth of a list request, issue 15); None: go paginate_queryset's way (a page
        past the end or with no rows, an odd page number, no shape).

        `count()`, when given, builds the same rows as `build()` without its columns (their
        joins): what the total counts.

        `shape` must hold everything the SQL depends on besides the page: the gate's
        restrict_key for the user. The compiled SQL, parameters and row converters are kept on
        the database connection (a thread's own; the converters belong to it).

        `version(connection)`, when given with `render`, reads a token that changes with every
        write to anything the rows show (containers/list_version.py): while it stays the same,
        the page is answered from the rows this process rendered for it (PAGES), without its
        SQL. None from it: read the rows."""
        page_size = self.get_page_size(request)
        number = self._plain_number(request, page_size)
        if shape is None or number is None:
            return None
        connection = connections[router.db_for_read(model)]
        compiled = connection.__dict__.setdefault("_berth_list_pages", {})
        key = (shape, page_size, number)
        kept_as = None
        if render is not None:
            namespace = _namespace(render, connection)
            token = version(connection) if version is not None else None
            if token is not None:
                # Read before the rows: rows read after it are never older than it.
                kept_as = (connection.settings_dict["NAME"], key, token, namespace)
                kept = PAGES.get(kept_as)
                if kept is not None:
                    return self._page_of(*kept, number, page_size, request)
        entry = compiled.get(key)
        if entry is None:
            start = (number - 1) * page_size
            counted = count() if count is not None else None
            built, times = build(), None
            if render is not None and connection.vendor == "sqlite":
                built, times = _sqlite_text_times(built)
            sliced = _with_total(built, counted)[start : start + page_size]
            compiler = sliced.query.get_compiler(using=sliced.db)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # nothing visible: the general way answers it
                return None
            # The last slot: the positions of its date-time columns read as text (PostgreSQL:
            # from the first run's cursor description; psycopg builds a Column for each of its
            # ~20 columns on every read of it: a twentieth of a list request).
            fields = [column[0] for column in compiler.select[: compiler.col_count]]
            entry = [sql, params, compiler, compiler.get_converters(fields), times]
            if len(compiled) >= MAX_SHAPES:
                compiled.clear()
            compiled[key] = entry
        sql, params, compiler, converters, timestamps = entry
        text_times = render is not None and connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            if text_times:
                # Date-times as PostgreSQL writes them (the session's zone, UTC): the row
                # cache's key, parsed only for rows it has not rendered (psycopg's parsing
                # of every one was a seventh of a list request).
                cursor.cursor.adapters.register_loader("timestamptz", TextLoader)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            if timestamps is None:
                timestamps = entry[4] = [
                    i
                    for i, column in enumerate(cursor.description or ())
                    if column[1] == TIMESTAMPTZ_OID  # DB-API: the type code
                ]
            times = timestamps if render is not None else []
        if not rows:
            return None
        if render is not None:
            total = rows[0][-1]

            def convert(raw_rows):
                if times:
                    raw_rows = _parse_times(connection, raw_rows, times)
                if wanted:
                    raw_rows = compiler.apply_converters(raw_rows, wanted)
                return [tuple(row) for row in raw_rows]

            width = len(rows[0]) - 1  # the total's column is taken off first
            wanted = {pos: c for pos, c in (converters or {}).items() if pos < width}
            raw_rows = [row[:-1] for row in rows]
            out = ROW_CACHE.render(raw_rows, namespace, convert, render)
            if kept_as is not None:
                PAGES.put(kept_as, (total, out))
            return self._page_of(total, out, number, page_size, request)
        if converters:
            rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
        return self._page(rows, number, page_size, request)
