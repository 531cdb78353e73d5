/* Config layer: parsing, continuation rows, overrides, type checks, errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nde/nde.h>

static nde_ctx *ctx;
static nde_config *cfg;

static void setup(void)
{
    ctx = nde_ctx_create();
    cfg = nde_config_create();
}

static void teardown(void)
{
    nde_config_destroy(cfg);
    nde_ctx_destroy(ctx);
}

static const nde_key solver_keys[] = {
    {"rtol", NDE_KEY_DOUBLE, "1e-6", "relative tolerance"},
    {"atol", NDE_KEY_DOUBLE, "1e-6", "absolute tolerance"},
    {"max_steps", NDE_KEY_INT, "100000", "step limit"},
    {"adaptive", NDE_KEY_BOOL, "true", "adaptive stepping"},
    {"name", NDE_KEY_WORD, "x", "a word"},
    {"saveat", NDE_KEY_DOUBLES, "", "save times"},
    {"layers", NDE_KEY_INTS, NULL, "layer sizes"},
    {"state", NDE_KEY_WORDS, "", "state names"},
    {"params", NDE_KEY_ASSIGNS, "", "parameters"},
    {"d*", NDE_KEY_TEXT, "", "equations"},
    {NULL, 0, NULL, NULL}};

static nde_section *load_checked(const char *text)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    nde_section *sec;
    ck_assert_int_eq(nde_config_load_string(cfg, "t.ini", text, ctx), NDE_OK);
    sec = nde_config_section(cfg, "solver");
    ck_assert_ptr_nonnull(sec);
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    return sec;
}

static void assert_message(const char *needle)
{
    ck_assert_msg(strstr(nde_ctx_message(ctx), needle) != NULL,
                  "message '%s' lacks '%s'", nde_ctx_message(ctx), needle);
}

START_TEST(typed_values_and_defaults)
{
    nde_section *sec = load_checked("[solver]\nplugin = tsit5\nrtol = 1e-3 ; inline comment\n"
                                    "layers = 2, 50, 2\nadaptive = no\nstate = x, y\n"
                                    "params = a=1.5, b = -2\ndx = a*x - b*x*y\n");
    double d;
    long l, *ls;
    int b;
    size_t n;
    char **words, **names;
    double *vals;
    const char *s;

    ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
    ck_assert_double_eq(d, 1e-3);
    ck_assert_int_eq(nde_get_double(sec, "atol", &d, ctx), NDE_OK); /* default */
    ck_assert_double_eq(d, 1e-6);
    ck_assert_int_eq(nde_get_long(sec, "max_steps", &l, ctx), NDE_OK);
    ck_assert_int_eq(l, 100000);
    ck_assert_int_eq(nde_get_bool(sec, "adaptive", &b, ctx), NDE_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(nde_get_longs(sec, "layers", &ls, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ls[1], 50);
    free(ls);
    ck_assert_int_eq(nde_get_words(sec, "state", &words, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(words[1], "y");
    ck_assert_ptr_null(words[2]);
    nde_strings_free(words);
    ck_assert_int_eq(nde_get_assigns(sec, "params", &names, &vals, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[1], "b");
    ck_assert_double_eq(vals[1], -2.0);
    nde_strings_free(names);
    free(vals);
    ck_assert_int_eq(nde_get_string(sec, "dx", &s, ctx), NDE_OK);
    ck_assert_str_eq(s, "a*x - b*x*y");
    ck_assert_int_eq(nde_get_string(sec, "plugin", &s, ctx), NDE_OK);
    ck_assert_str_eq(s, "tsit5");
    /* optional list with no default: present as zero items */
    ck_assert_int_eq(nde_get_doubles(sec, "saveat", &vals, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 0);
    free(vals);
}
END_TEST

/* Assignments take the names fields give their parameters: theta[0] (the
 * default), b1[2], W1[0,1] (whose comma does not split the list); the
 * canonical writer gives them back as they came. Other brackets are
 * refused. */
START_TEST(indexed_assign_names)
{
    static const char *const bad[] = {"a[=1", "a[]=1", "a[x]=1", "a[0,]=1",
                                      "a[,0]=1", "[0]=1", "a[0]b=1",
                                      "a[0 ,1]=1", "a[0]]=1", "a[[0]]=1"};
    const nde_key *const tables[] = {solver_keys, NULL};
    nde_section *sec = load_checked("[solver]\nparams = theta[0]=2, "
                                    "W1[0,1] = -1.5, b1[12]=3, c=4\n");
    char **names, *buf = NULL;
    double *vals;
    size_t n, len = 0, i;
    FILE *mem;

    ck_assert_int_eq(nde_get_assigns(sec, "params", &names, &vals, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(names[0], "theta[0]");
    ck_assert_str_eq(names[1], "W1[0,1]");
    ck_assert_str_eq(names[2], "b1[12]");
    ck_assert_str_eq(names[3], "c");
    ck_assert_double_eq(vals[0], 2.0);
    ck_assert_double_eq(vals[1], -1.5);
    ck_assert_double_eq(vals[2], 3.0);
    nde_strings_free(names);
    free(vals);
    ck_assert_ptr_nonnull(mem = open_memstream(&buf, &len));
    ck_assert_int_eq(nde_config_write_canonical(cfg, mem), NDE_OK);
    fclose(mem);
    ck_assert_msg(strstr(buf, "params = theta[0]=2, W1[0,1]=-1.5, b1[12]=3, c=4\n"),
                  "%s", buf);
    free(buf);

    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[100];
        nde_config_destroy(cfg);
        cfg = nde_config_create();
        snprintf(text, sizeof text, "[solver]\nparams = %s\n", bad[i]);
        ck_assert_int_eq(nde_config_load_string(cfg, "b.ini", text, ctx), NDE_OK);
        sec = nde_config_section(cfg, "solver");
        ck_assert_msg(nde_section_check(sec, tables, ctx) == NDE_ECONFIG,
                      "'%s' accepted", bad[i]);
        assert_message("b.ini:2: [solver] params: expected a comma-separated "
                       "list of name=number");
    }
}
END_TEST

START_TEST(continuation_rows)
{
    nde_config *c2 = cfg;
    nde_section *sec;
    double *m;
    size_t rows, cols, n;
    const nde_key keys[] = {{"y0", NDE_KEY_DOUBLES, NULL, "rows"},
                            {"saveat", NDE_KEY_DOUBLES, "", "times"},
                            {NULL, 0, NULL, NULL}};
    const nde_key *const tables[] = {keys, NULL};
    ck_assert_int_eq(nde_config_load_string(c2, "p.ini",
                                            "[problem]\ny0 = 1.0, 1.0   ; first row\n"
                                            "     2.0, 0.5 ; second row\n"
                                            "saveat = 0, 1, 2,\n  3, 4 ; the end\n",
                                            ctx),
                     NDE_OK);
    sec = nde_config_section(c2, "problem");
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    ck_assert_int_eq(nde_get_matrix(sec, "y0", &m, &rows, &cols, ctx), NDE_OK);
    ck_assert_uint_eq(rows, 2);
    ck_assert_uint_eq(cols, 2);
    ck_assert_double_eq(m[2], 2.0);
    ck_assert_double_eq(m[3], 0.5);
    free(m);
    ck_assert_int_eq(nde_get_doubles(sec, "saveat", &m, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_double_eq(m[4], 4.0);
    free(m);
}
END_TEST

START_TEST(matrix_rows_must_agree)
{
    nde_section *sec;
    double *m;
    size_t rows, cols;
    const nde_key keys[] = {{"y0", NDE_KEY_DOUBLES, NULL, "rows"},
                            {NULL, 0, NULL, NULL}};
    const nde_key *const tables[] = {keys, NULL};
    ck_assert_int_eq(nde_config_load_string(cfg, "p.ini",
                                            "[problem]\ny0 = 1, 2\n  3\n", ctx),
                     NDE_OK);
    sec = nde_config_section(cfg, "problem");
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    ck_assert_int_eq(nde_get_matrix(sec, "y0", &m, &rows, &cols, ctx), NDE_ECONFIG);
    assert_message("p.ini:3: [problem] y0: row 2 has 1 values");
}
END_TEST

START_TEST(over_long_line_names_real_line)
{
    char text[600];
    int n = snprintf(text, sizeof text, "[solver]\nrtol = 1e-3\nsaveat = 0");
    while (n < 300)
        n += snprintf(text + n, sizeof text - (size_t)n, ", 1");
    snprintf(text + n, sizeof text - (size_t)n, "\natol = 1\n");
    ck_assert_int_eq(nde_config_load_string(cfg, "long.ini", text, ctx), NDE_ECONFIG);
    assert_message("long.ini:3: line too long");
}
END_TEST

START_TEST(unknown_section_suggests)
{
    ck_assert_int_eq(nde_config_load_string(cfg, "s.ini", "[problem]\nt1 = 1\n\n[solvr]\nrtol = 1\n", ctx),
                     NDE_ECONFIG);
    assert_message("s.ini:4: unknown section [solvr] (did you mean [solver]?)");
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_load_string(cfg, "s.ini", "[regulariser.local]\n", ctx),
                     NDE_ECONFIG);
    assert_message("did you mean [regularizer.local]?");
}
END_TEST

START_TEST(unknown_key_suggests)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    ck_assert_int_eq(nde_config_load_string(cfg, "k.ini", "[solver]\nplugin = tsit5\nrtoll = 1e-3\n", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_section_check(nde_config_section(cfg, "solver"), tables, ctx),
                     NDE_ECONFIG);
    assert_message("k.ini:3: [solver] rtoll: unknown key (did you mean 'rtol'?)");
}
END_TEST

START_TEST(bad_values_name_file_line_key)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[solver]\nrtol = abc\n", "b.ini:2: [solver] rtol: expected a finite number, got 'abc'"},
        {"[solver]\nrtol = 1e-3 # not a comment\n", "[solver] rtol: expected a finite number"},
        {"[solver]\nrtol = inf\n", "expected a finite number, got 'inf'"},
        {"[solver]\nmax_steps = 1.5\n", "[solver] max_steps: expected an integer"},
        {"[solver]\nadaptive = maybe\n", "expected true or false, got 'maybe'"},
        {"[solver]\nlayers = 2, x, 2\n", "[solver] layers: expected a comma-separated list of integers; 'x' is not valid"},
        {"[solver]\nlayers = 2,, 2\n", "an empty item is not valid"},
        {"[solver]\nparams = a=1, b\n", "'b' is not valid"},
        {"[solver]\nname = two words\n", "expected one word"},
        {"[solver]\nrtol = 1\n  2\n", "b.ini:3: [solver] rtol: expected a finite number, got a continuation line"},
        {"[solver]\nlayers = 1,\n  2;3\n", "b.ini:3: [solver] layers: expected a comma-separated list of integers; '2;3' is not valid"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        nde_config *c = nde_config_create();
        nde_ctx_clear(ctx);
        ck_assert_int_eq(nde_config_load_string(c, "b.ini", cases[i].text, ctx), NDE_OK);
        ck_assert_int_eq(nde_section_check(nde_config_section(c, "solver"), tables, ctx),
                         NDE_ECONFIG);
        ck_assert_msg(strstr(nde_ctx_message(ctx), cases[i].needle),
                      "case %zu: '%s' lacks '%s'", i, nde_ctx_message(ctx), cases[i].needle);
        nde_config_destroy(c);
    }
}
END_TEST

START_TEST(missing_required_and_wrong_length)
{
    nde_section *sec = load_checked("[solver]\nsaveat = 1, 2, 3\n");
    long *ls;
    size_t n;
    double three[3], two[2];
    ck_assert_int_eq(nde_get_longs(sec, "layers", &ls, &n, ctx), NDE_ECONFIG);
    assert_message("t.ini:1: [solver] layers: missing required key (layer sizes)");
    ck_assert_int_eq(nde_get_doubles_n(sec, "saveat", three, 3, ctx), NDE_OK);
    ck_assert_int_eq(nde_get_doubles_n(sec, "saveat", two, 2, ctx), NDE_ECONFIG);
    assert_message("t.ini:2: [solver] saveat: expected 2 values, got 3");
}
END_TEST

START_TEST(overrides)
{
    nde_section *sec;
    double d;
    ck_assert_int_eq(nde_config_load_string(cfg, "o.ini", "[solver]\nrtol = 1e-6\n", ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "solver.rtol=1e-3", ctx), NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "field.expert.b = 2", ctx), NDE_OK);
    sec = load_checked("");
    ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
    ck_assert_double_eq(d, 1e-3);
    sec = nde_config_section(cfg, "field.expert");
    ck_assert_ptr_nonnull(sec);
    ck_assert(nde_section_has(sec, "b"));
    ck_assert_ptr_nonnull(strstr(nde_section_origin(sec, "b"), "command line (-s field.expert.b = 2)"));

    ck_assert_int_eq(nde_config_override(cfg, "solverrtol=1", ctx), NDE_ECONFIG);
    assert_message("expected section.key=value");
    ck_assert_int_eq(nde_config_override(cfg, "solver.rtol", ctx), NDE_ECONFIG);
    ck_assert_int_eq(nde_config_override(cfg, "slover.rtol=1", ctx), NDE_ECONFIG);
    assert_message("did you mean [solver]?");
    /* an override that does not parse is caught by the check, naming it */
    ck_assert_int_eq(nde_config_override(cfg, "solver.atol=x", ctx), NDE_OK);
    {
        const nde_key *const tables[] = {solver_keys, NULL};
        ck_assert_int_eq(nde_section_check(nde_config_section(cfg, "solver"), tables, ctx),
                         NDE_ECONFIG);
        assert_message("command line (-s solver.atol=x): [solver] atol: expected a finite number");
    }
}
END_TEST

START_TEST(syntax_errors)
{
    ck_assert_int_eq(nde_config_load_string(cfg, "x.ini", "[solver]\nrtol = 1\nthis is not ini\n", ctx),
                     NDE_ECONFIG);
    assert_message("x.ini:3: syntax error");
    assert_message("this is not ini");
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_load_string(cfg, "y.ini", "rtol = 1\n", ctx), NDE_ECONFIG);
    assert_message("y.ini:1: key 'rtol' appears before any [section]");
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_load_string(cfg, "z.ini", "[solver]\nrtol = 1\natol = 2\nrtol = 3\n", ctx),
                     NDE_ECONFIG);
    assert_message("z.ini:4: [solver] rtol: key given twice (first at line 2)");
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_load_string(cfg, "w.ini", "[solver\n", ctx), NDE_ECONFIG);
    assert_message("w.ini:1: section header without ']'");
}
END_TEST

START_TEST(missing_file)
{
    ck_assert_int_eq(nde_config_load_file(cfg, "/nonexistent/x.ini", ctx), NDE_EIO);
    assert_message("/nonexistent/x.ini: cannot open");
}
END_TEST

START_TEST(write_round_trip)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem;
    nde_config *back = nde_config_create();
    nde_section *sec;
    double *m;
    size_t rows, cols;
    const nde_key keys[] = {{"y0", NDE_KEY_DOUBLES, NULL, "rows"}, {NULL, 0, NULL, NULL}};
    const nde_key *const tables[] = {keys, NULL};

    ck_assert_int_eq(nde_config_load_string(cfg, "r.ini", "[problem]\ny0 = 1, 2\n  3, 4\n[solver]\nrtol=1e-9\n", ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "field.expert.b=2", ctx), NDE_OK);
    mem = open_memstream(&buf, &len);
    ck_assert_int_eq(nde_config_write(cfg, mem), NDE_OK);
    fclose(mem);
    ck_assert_int_eq(nde_config_load_string(back, "written", buf, ctx), NDE_OK);
    sec = nde_config_section(back, "problem");
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    ck_assert_int_eq(nde_get_matrix(sec, "y0", &m, &rows, &cols, ctx), NDE_OK);
    ck_assert_uint_eq(rows * 10 + cols, 22);
    ck_assert_double_eq(m[3], 4.0);
    free(m);
    ck_assert(nde_section_has(nde_config_section(back, "field.expert"), "b"));
    nde_config_destroy(back);
    free(buf);
}
END_TEST

START_TEST(suggestions)
{
    const char *const words[] = {"rtol", "atol", "max_steps", NULL};
    ck_assert_str_eq(nde_suggest("rtoll", words), "rtol");
    ck_assert_str_eq(nde_suggest("maxsteps", words), "max_steps");
    ck_assert_ptr_null(nde_suggest("completely_different", words));
}
END_TEST

START_TEST(plugin_names)
{
    const nde_plugin_info *info;
    ck_assert(nde_plugin_name_valid("tsit5"));
    ck_assert(!nde_plugin_name_valid("../x"));
    ck_assert(!nde_plugin_name_valid("Tsit5"));
    ck_assert(!nde_plugin_name_valid(""));
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "../x", &info), NDE_EPLUGIN);
    assert_message("invalid solver plugin name '../x'");
    ck_assert_int_eq(nde_plugin_find(ctx, NDE_KIND_SOLVER, "no_such_solver", &info),
                     NDE_EPLUGIN);
    assert_message("no solver plugin named 'no_such_solver'");
    assert_message("available solver plugins:");
}
END_TEST

START_TEST(status_table)
{
    ck_assert_str_eq(nde_status_name(NDE_EMAXSTEPS), "NDE_EMAXSTEPS");
    ck_assert_str_eq(nde_status_string(NDE_OK), "success");
    ck_assert(nde_status_is_usage(NDE_ECONFIG));
    ck_assert(!nde_status_is_usage(NDE_ENONFINITE));
    ck_assert_int_eq(nde_error(ctx, NDE_EIO, "x %d", 1), NDE_EIO);
    nde_error_prefix(ctx, "file");
    ck_assert_str_eq(nde_ctx_message(ctx), "file: x 1");
    ck_assert(nde_seed_derive(1, 0) != nde_seed_derive(1, 1));
    ck_assert(nde_seed_derive(1, 0) == nde_seed_derive(1, 0));
}
END_TEST

/* A text of n copies of c, NUL-terminated; free with free(). */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void override_raw(const char *lhs, const char *value)
{
    size_t n = strlen(lhs) + strlen(value) + 1;
    char *a = malloc(n);
    ck_assert_ptr_nonnull(a);
    snprintf(a, n, "%s%s", lhs, value);
    ck_assert_int_eq(nde_config_override(cfg, a, ctx), NDE_OK);
    free(a);
}

/* Override "solver.KEY=VALUE" and check the section. */
static nde_section *override_checked(const char *key, const char *value)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    size_t n = strlen(key) + strlen(value) + 16;
    char *a = malloc(n);
    nde_section *sec;
    ck_assert_ptr_nonnull(a);
    snprintf(a, n, "solver.%s=%s", key, value);
    ck_assert_int_eq(nde_config_override(cfg, a, ctx), NDE_OK);
    free(a);
    sec = nde_config_section(cfg, "solver");
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    return sec;
}

/* Both writers give lines the reader takes, whatever the values' length
 * (a row of 200 characters gave a checkpoint config that no longer
 * loaded): a list, a matrix row, a text without blanks and a long number
 * from -s come back the same. */
static void write_and_reload(int canonical, nde_config *back)
{
    char *buf = NULL, *line;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mem);
    ck_assert_int_eq(canonical ? nde_config_write_canonical(cfg, mem)
                               : nde_config_write(cfg, mem),
                     NDE_OK);
    fclose(mem);
    for (line = buf; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
        ck_assert_uint_le(strcspn(line, "\n"), 198);
    ck_assert_msg(nde_config_load_string(back, "written", buf, ctx) == NDE_OK,
                  "%s\n%s", nde_ctx_message(ctx), buf);
    free(buf);
}

START_TEST(long_values_written_in_lines_read_back)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    char text[2000], *path = repeat('p', 300), *zeros = repeat('0', 300);
    size_t n = 0, i, rows, cols;
    double *m, d;
    const char *got;

    for (i = 0; i < 200; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%zu.5",
                              i ? ", " : "", i);
    override_checked("saveat", text);
    override_checked("d_text", path);
    snprintf(text, sizeof text, "0.%s5", zeros);
    override_checked("rtol", text);
    ck_assert_int_eq(nde_config_load_string(cfg, "m.ini",
                                            "[problem]\ny0 = 1, 2,\n  3, 4\n"
                                            "  5, 6,\n  7, 8\n", ctx),
                     NDE_OK);
    for (int canonical = 0; canonical < 2; canonical++) {
        nde_config *back = nde_config_create();
        nde_section *sec;
        write_and_reload(canonical, back);
        sec = nde_config_section(back, "solver");
        ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
        ck_assert_int_eq(nde_get_doubles(sec, "saveat", &m, &n, ctx), NDE_OK);
        ck_assert_uint_eq(n, 200);
        ck_assert_double_eq(m[199], 199.5);
        free(m);
        ck_assert_int_eq(nde_get_string(sec, "d_text", &got, ctx), NDE_OK);
        ck_assert_str_eq(got, path);
        ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
        ck_assert(d > 4.9e-301 && d < 5.1e-301);
        /* a matrix row ending in ',' goes on on the next line */
        sec = nde_config_section(back, "problem");
        ck_assert_int_eq(nde_get_matrix(sec, "y0", &m, &rows, &cols, ctx), NDE_OK);
        ck_assert_uint_eq(rows * 10 + cols, 24);
        ck_assert_double_eq(m[4], 5.0);
        free(m);
        nde_config_destroy(back);
    }
    free(path);
    free(zeros);
}
END_TEST

/* A run of characters a continuation line cannot start with ('[' starts a
 * header, ';' and '#' a comment, blanks are stripped) and longer than the
 * writer's line is written on a longer line the reader still takes (the
 * fuzzer found a value written back as one line of 352 characters); one
 * that no line can hold is refused up front. */
START_TEST(long_runs_of_unbreakable_characters)
{
    char *run = repeat('[', 150), *huge = repeat('[', 250);
    char value[400], assignment[400];
    nde_config *back = nde_config_create();
    const char *got;

    /* no break before the run's end: its first line is 160 characters */
    snprintf(value, sizeof value, "x%sy, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "
             "12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25", run);
    override_checked("d_run", value);
    write_and_reload(0, back);
    ck_assert_int_eq(nde_get_string(nde_config_section(back, "solver"),
                                    "d_run", &got, ctx), NDE_OK);
    ck_assert_str_eq(got, value);
    /* a file line of 198 characters, a value that breaks nowhere: written
     * back as "key=value", not "key = value" (200 characters) */
    {
        char *line = repeat('[', 194), text[300];
        nde_config *back2 = nde_config_create();
        snprintf(text, sizeof text, "[solver]\nplugin = tsit5\nd_x=%s\n",
                 line);
        ck_assert_int_eq(nde_config_load_string(cfg, "f.ini", text, ctx),
                         NDE_OK);
        write_and_reload(0, back2);
        ck_assert_int_eq(nde_get_string(nde_config_section(back2, "solver"),
                                        "d_x", &got, ctx), NDE_OK);
        ck_assert_str_eq(got, line);
        nde_config_destroy(back2);
        free(line);
    }
    /* a key of 49 characters ("key=value" lines) and a long value that
     * breaks anywhere: broken within the line */
    {
        char key[64] = "d", *val = repeat('a', 200);
        nde_config *back3 = nde_config_create();
        memset(key + 1, 'k', 48);
        key[49] = '\0';
        override_checked(key, val);
        write_and_reload(0, back3);
        ck_assert_int_eq(nde_get_string(nde_config_section(back3, "solver"),
                                        key, &got, ctx), NDE_OK);
        ck_assert_str_eq(got, val);
        nde_config_destroy(back3);
        free(val);
    }
    snprintf(assignment, sizeof assignment, "solver.d_big=a%sb", huge);
    ck_assert_int_eq(nde_config_override(cfg, assignment, ctx), NDE_ECONFIG);
    ck_assert_msg(strstr(nde_ctx_message(ctx), "[solver] d_big: refused: a "
                         "run of blanks, '[', ';' or '#' too long"),
                  "%s", nde_ctx_message(ctx));
    nde_config_destroy(back);
    free(run);
    free(huge);
}
END_TEST

/* Values of any length are read whole: -s was cut at 4095 characters,
 * numbers at 127, integers at 63, list items at 255, names at 127. */
START_TEST(long_values_read_whole)
{
    char *zeros = repeat('0', 300), *text, *name = repeat('p', 130);
    size_t n = 0, cap = 800 * 8 + 1, i;
    double d, *ds, *vals;
    long l;
    char **names;
    nde_section *sec;

    ck_assert_ptr_nonnull(text = malloc(cap));
    for (i = 1; i <= 800; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s%zu", i > 1 ? "," : "", i);
    sec = override_checked("saveat", text);
    ck_assert_int_eq(nde_get_doubles(sec, "saveat", &ds, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 800);
    ck_assert_double_eq(ds[799], 800.0);
    free(ds);

    snprintf(text, cap, "0.%s5", zeros);             /* 5e-301 */
    sec = override_checked("rtol", text);
    ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
    ck_assert(d > 4.9e-301 && d < 5.1e-301);
    snprintf(text, cap, "%s7", zeros);                /* 7 */
    sec = override_checked("max_steps", text);
    ck_assert_int_eq(nde_get_long(sec, "max_steps", &l, ctx), NDE_OK);
    ck_assert_int_eq(l, 7);
    snprintf(text, cap, "1, 0.%s3", zeros);
    sec = override_checked("saveat", text);
    ck_assert_int_eq(nde_get_doubles(sec, "saveat", &ds, &n, ctx), NDE_OK);
    ck_assert(n == 2 && ds[1] > 2.9e-301 && ds[1] < 3.1e-301);
    free(ds);
    snprintf(text, cap, "%s=2", name);
    sec = override_checked("params", text);
    ck_assert_int_eq(nde_get_assigns(sec, "params", &names, &vals, &n, ctx), NDE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(names[0], name);
    nde_strings_free(names);
    free(vals);
    free(text);
    free(zeros);
    free(name);
}
END_TEST

/* Overflow and underflow are errors naming file, line and key. */
START_TEST(numbers_out_of_range)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    char *big = repeat('1', 400), *word = repeat('w', 150);
    word[140] = '/';
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"[solver]\nrtol = 1e999\n", "r.ini:2: [solver] rtol: '1e999' is out of range: it overflows a double"},
        {"[solver]\nrtol = -1e-400\n", "r.ini:2: [solver] rtol: '-1e-400' is out of range: it underflows"},
        {"[solver]\nrtol = 4e-320\n", "'4e-320' is out of range: it underflows"},
        {"[solver]\nmax_steps = 99999999999999999999\n", "r.ini:2: [solver] max_steps: '99999999999999999999' is out of range"},
        {"[solver]\nsaveat = 1,\n  2, 1e-400\n", "r.ini:3: [solver] saveat: expected a comma-separated list of numbers; '1e-400' is out of range: it underflows"},
        {"[solver]\nlayers = 2, -99999999999999999999\n", "'-99999999999999999999' is out of range"},
        {"[solver]\nparams = a = 1e400\n", "'a = 1e400' is out of range: it overflows"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        nde_config *c = nde_config_create();
        nde_ctx_clear(ctx);
        ck_assert_int_eq(nde_config_load_string(c, "r.ini", cases[i].text, ctx), NDE_OK);
        ck_assert_int_eq(nde_section_check(nde_config_section(c, "solver"), tables, ctx),
                         NDE_ECONFIG);
        ck_assert_msg(strstr(nde_ctx_message(ctx), cases[i].needle),
                      "case %zu: '%s' lacks '%s'", i, nde_ctx_message(ctx), cases[i].needle);
        nde_config_destroy(c);
    }
    /* a 400-digit number, and a word whose bad character comes after what
     * a message shows (both were cut before they were checked) */
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_load_string(cfg, "r.ini", "[solver]\n", ctx), NDE_OK);
    override_raw("solver.rtol=", big);
    ck_assert_int_eq(nde_section_check(nde_config_section(cfg, "solver"), tables, ctx),
                     NDE_ECONFIG);
    assert_message("[solver] rtol: '1111111111");
    assert_message("...' is out of range: it overflows a double");
    nde_ctx_clear(ctx);
    ck_assert_int_eq(nde_config_override(cfg, "solver.rtol=1", ctx), NDE_OK);
    override_raw("solver.name=", word);
    ck_assert_int_eq(nde_section_check(nde_config_section(cfg, "solver"), tables, ctx),
                     NDE_ECONFIG);
    assert_message("[solver] name: expected one word");
    free(big);
    free(word);
}
END_TEST

/* Section names of any length: inih cut them at 49 characters, so the keys
 * of a long one went to another section whose name starts the same. */
START_TEST(long_section_and_key_names)
{
    char *a43 = repeat('a', 43), *key = repeat('k', 60), text[600];
    nde_section *s1, *s2;
    snprintf(text, sizeof text,
             "[field.%s]\nx = 1\n[field.%sbb]\ny = 2\n[field.%s]\n%s = 1,\n  2\n",
             a43, a43, a43, key);
    ck_assert_int_eq(nde_config_load_string(cfg, "n.ini", text, ctx), NDE_OK);
    snprintf(text, sizeof text, "field.%s", a43);
    ck_assert_ptr_nonnull(s1 = nde_config_section(cfg, text));
    snprintf(text, sizeof text, "field.%sbb", a43);
    ck_assert_ptr_nonnull(s2 = nde_config_section(cfg, text));
    ck_assert(!nde_section_has(s1, "y"));
    ck_assert(nde_section_has(s2, "y"));
    /* a continuation of a key longer than inih's 49-character copy */
    ck_assert_uint_eq(nde_section_nkeys(s1), 2);
    ck_assert_str_eq(nde_section_key_at(s1, 1), key);
    /* a sub-section is named as a plugin: longer is refused, saying so */
    snprintf(text, sizeof text, "[regularizer.%s%s]\n", key, key);
    ck_assert_int_eq(nde_config_load_string(cfg, "r.ini", text, ctx), NDE_ECONFIG);
    assert_message("r.ini:1: unknown section [regularizer.kkkk");
    assert_message("is 1 to 64 characters of [a-z0-9_]");
    free(a43);
    free(key);
}
END_TEST

/* A UTF-8 byte order mark, CR LF line ends and blanks inside the brackets
 * gave "out of memory". */
START_TEST(bom_crlf_and_blank_headers)
{
    nde_section *sec;
    ck_assert_int_eq(nde_config_load_string(cfg, "b.ini",
                                            "\xEF\xBB\xBF[solver]\r\nrtol = 1\r\n"
                                            "[ problem ]  ; comment\r\nt1 = 2\r\n"
                                            "[field\r]\nplugin = expr\n",
                                            ctx),
                     NDE_OK);
    ck_assert_ptr_nonnull(sec = nde_config_section(cfg, "solver"));
    ck_assert(nde_section_has(sec, "rtol"));
    ck_assert_ptr_nonnull(sec = nde_config_section(cfg, "problem"));
    ck_assert(nde_section_has(sec, "t1"));
    ck_assert_ptr_nonnull(sec = nde_config_section(cfg, "field"));
    ck_assert(nde_section_has(sec, "plugin"));
    ck_assert_int_eq(nde_config_load_string(cfg, "j.ini", "[solver] x\n", ctx),
                     NDE_ECONFIG);
    assert_message("j.ini:1: text after a section header's ']'");
}
END_TEST

/* -s text must read back the same from the config a checkpoint stores: a
 * newline in a value smuggled a [field] section into it. */
START_TEST(overrides_refuse_what_does_not_read_back)
{
    static const struct {
        const char *assignment, *needle;
    } cases[] = {
        {"train.metrics=m\n[field]\nactivation = relu",
         "command line (-s train.metrics=m?[field]?activation = relu): [train] metrics: "
         "refused: control character 0x0a"},
        {"train.metrics=m\rx", "control character 0x0d"},
        {"solver.rt]ol=1", "[solver] rt]ol: refused: a key may only have"},
        {"solver.rt ol=1", "refused: a key may only have"},
        {"solver.rtol = ; 1", "refused: ';' at the start of a value"},
        {"solver.rtol=1 ;x", "refused: ';' at the start of a value or after a blank"},
        {"sol]ver.rtol=1", "unknown section [sol]ver]"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        nde_ctx_clear(ctx);
        ck_assert_int_eq(nde_config_override(cfg, cases[i].assignment, ctx), NDE_ECONFIG);
        ck_assert_msg(strstr(nde_ctx_message(ctx), cases[i].needle),
                      "case %zu: '%s' lacks '%s'", i, nde_ctx_message(ctx), cases[i].needle);
    }
    ck_assert_ptr_null(nde_config_section(cfg, "field"));
    ck_assert_int_eq(nde_config_override(cfg, "train.metrics=a;b\tc", ctx), NDE_OK);
}
END_TEST

/* The text nde_config_write gives for cfg; free() it. */
static char *written(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mem);
    ck_assert_int_eq(nde_config_write(cfg, mem), NDE_OK);
    fclose(mem);
    return buf;
}

/* `-s 'field='` empties [field], so that another field plugin can be
 * composed without the old one's keys (-s could not remove a key: an
 * `nde ab` arm could not switch the field plugin). */
START_TEST(override_empties_a_section)
{
    nde_section *sec;
    char *text;

    ck_assert_int_eq(nde_config_load_string(cfg, "e.ini",
                                            "[field]\nplugin = mlp\nlayers = 2, 8, 2\n"
                                            "[field.expert]\nplugin = expr\nb = 1\n"
                                            "[solver]\nrtol = 1e-3\n",
                                            ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_config_override(cfg, "field=", ctx), NDE_OK);
    sec = nde_config_section(cfg, "field");
    ck_assert_ptr_nonnull(sec);
    ck_assert_uint_eq(nde_section_nkeys(sec), 0);
    ck_assert_ptr_eq(nde_config_section_at(cfg, 0), sec); /* keeps its place */
    ck_assert_str_eq(nde_section_origin(sec, NULL), "command line (-s field=)");
    ck_assert_int_eq(nde_config_override(cfg, "field.plugin=linear", ctx), NDE_OK);
    ck_assert_uint_eq(nde_section_nkeys(sec), 1);
    ck_assert(!nde_section_has(sec, "layers"));

    /* a sub-section: nothing after the last dot ("field.expert=" is the key
     * expert of [field]) */
    ck_assert_int_eq(nde_config_override(cfg, " field.expert. = ", ctx), NDE_OK);
    ck_assert_uint_eq(nde_section_nkeys(nde_config_section(cfg, "field.expert")), 0);
    ck_assert_int_eq(nde_config_override(cfg, "field.expert=", ctx), NDE_OK);
    ck_assert(nde_section_has(sec, "expert"));
    /* an absent section is created empty */
    ck_assert_int_eq(nde_config_override(cfg, "train=", ctx), NDE_OK);
    ck_assert_uint_eq(nde_section_nkeys(nde_config_section(cfg, "train")), 0);

    text = written();
    ck_assert_ptr_null(strstr(text, "layers"));
    ck_assert_ptr_null(strstr(text, "b = 1"));
    ck_assert_ptr_nonnull(strstr(text, "[field.expert]"));
    free(text);

    ck_assert_int_eq(nde_config_override(cfg, "solver=rk4", ctx), NDE_ECONFIG);
    assert_message("command line (-s solver=rk4): expected section.key=value");
    ck_assert_int_eq(nde_config_override(cfg, "fild=", ctx), NDE_ECONFIG);
    assert_message("did you mean [field]?");
    ck_assert_int_eq(nde_config_override(cfg, ".=", ctx), NDE_ECONFIG);
    assert_message("expected section.key=value or section=");
    ck_assert(nde_section_has(nde_config_section(cfg, "solver"), "rtol"));
}
END_TEST

/* -u removes one key: the default applies and the writer leaves it out. */
START_TEST(unset_removes_a_key)
{
    const nde_key *const tables[] = {solver_keys, NULL};
    nde_section *sec;
    double d;
    char *text;

    ck_assert_int_eq(nde_config_load_string(cfg, "u.ini",
                                            "[solver]\natol = 1e-9\nrtol = 1e-3\n"
                                            "max_steps = 10\n",
                                            ctx),
                     NDE_OK);
    ck_assert_int_eq(nde_config_unset(cfg, "solver.rtol", ctx), NDE_OK);
    sec = nde_config_section(cfg, "solver");
    ck_assert_uint_eq(nde_section_nkeys(sec), 2);
    ck_assert_str_eq(nde_section_key_at(sec, 0), "atol");
    ck_assert_str_eq(nde_section_key_at(sec, 1), "max_steps");
    ck_assert_int_eq(nde_section_check(sec, tables, ctx), NDE_OK);
    ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
    ck_assert_double_eq(d, 1e-6);
    ck_assert_int_eq(nde_get_double(sec, "atol", &d, ctx), NDE_OK);
    ck_assert_double_eq(d, 1e-9);
    text = written();
    ck_assert_ptr_null(strstr(text, "rtol"));
    free(text);
    /* set again after the removal: a new key */
    ck_assert_int_eq(nde_config_override(cfg, "solver.rtol=1e-4", ctx), NDE_OK);
    ck_assert_int_eq(nde_get_double(sec, "rtol", &d, ctx), NDE_OK);
    ck_assert_double_eq(d, 1e-4);
}
END_TEST

/* Removing what is not there is an error (a typo is not ignored). */
START_TEST(unset_absent_key_is_an_error)
{
    static const struct {
        const char *name, *needle;
    } cases[] = {
        {"solver.rtl", "command line (-u solver.rtl): [solver] rtl: nothing to remove "
                       "(no such key) (did you mean 'rtol'?)"},
        {"solver.zzzzzz", "[solver] zzzzzz: nothing to remove (no such key)"},
        {"problem.t0", "[problem] t0: nothing to remove (the config has no section [problem])"},
        {"slover.rtol", "did you mean [solver]?"},
        {"solver", "command line (-u solver): expected section.key (to empty a whole "
                   "section: -s 'solver=')"},
        {"solver.", "expected section.key"},
        {".rtol", "expected section.key"},
    };
    size_t i;

    ck_assert_int_eq(nde_config_load_string(cfg, "a.ini", "[solver]\nrtol = 1e-3\n", ctx),
                     NDE_OK);
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        nde_ctx_clear(ctx);
        ck_assert_int_eq(nde_config_unset(cfg, cases[i].name, ctx), NDE_ECONFIG);
        ck_assert_msg(strstr(nde_ctx_message(ctx), cases[i].needle),
                      "case %zu: '%s' lacks '%s'", i, nde_ctx_message(ctx), cases[i].needle);
    }
    ck_assert(nde_section_has(nde_config_section(cfg, "solver"), "rtol"));
    ck_assert_int_eq(nde_config_unset(cfg, "solver.rtol", ctx), NDE_OK);
    ck_assert_int_eq(nde_config_unset(cfg, "solver.rtol", ctx), NDE_ECONFIG);
    assert_message("nothing to remove");
}
END_TEST

/* A source that never ends is refused: /dev/zero was read forever. */
START_TEST(endless_sources)
{
    int fd[2];
    pid_t pid;
    char path[64];

    ck_assert_int_eq(nde_config_load_file(cfg, "/dev/zero", ctx), NDE_ECONFIG);
    assert_message("/dev/zero: not a text file (NUL byte)");
    ck_assert_int_eq(pipe(fd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        static char lines[1 << 16];
        size_t i;
        for (i = 0; i < sizeof lines; i++)
            lines[i] = i % 16 == 15 ? '\n' : i % 16 ? 'c' : ';';
        close(fd[0]);
        while (write(fd[1], lines, sizeof lines) > 0)
            ;
        _exit(0);
    }
    close(fd[1]);
    snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
    ck_assert_int_eq(nde_config_load_file(cfg, path, ctx), NDE_ECONFIG);
    assert_message("larger than a config may be (64 MiB)");
    close(fd[0]);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    /* endless_sources reads 64 MiB through a pipe: seconds under a
     * sanitizer on a loaded machine, past Check's default of 4 */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, typed_values_and_defaults);
    tcase_add_test(tc, continuation_rows);
    tcase_add_test(tc, indexed_assign_names);
    tcase_add_test(tc, matrix_rows_must_agree);
    tcase_add_test(tc, over_long_line_names_real_line);
    tcase_add_test(tc, unknown_section_suggests);
    tcase_add_test(tc, unknown_key_suggests);
    tcase_add_test(tc, bad_values_name_file_line_key);
    tcase_add_test(tc, missing_required_and_wrong_length);
    tcase_add_test(tc, overrides);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, write_round_trip);
    tcase_add_test(tc, suggestions);
    tcase_add_test(tc, plugin_names);
    tcase_add_test(tc, status_table);
    tcase_add_test(tc, long_values_read_whole);
    tcase_add_test(tc, long_values_written_in_lines_read_back);
    tcase_add_test(tc, long_runs_of_unbreakable_characters);
    tcase_add_test(tc, numbers_out_of_range);
    tcase_add_test(tc, long_section_and_key_names);
    tcase_add_test(tc, bom_crlf_and_blank_headers);
    tcase_add_test(tc, overrides_refuse_what_does_not_read_back);
    tcase_add_test(tc, endless_sources);
    tcase_add_test(tc, override_empties_a_section);
    tcase_add_test(tc, unset_removes_a_key);
    tcase_add_test(tc, unset_absent_key_is_an_error);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
