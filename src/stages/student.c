/* student -- the run's trained student; see include/student.h. */
#include "stages/student.h"

#include <stdlib.h>
#include <string.h>

#include "stages/ingest.h"
#include "stages/train.h"

int student_load(Student *s, const Config *cfg, const Comm *comm, Optim *opt, Err *e) {
    memset(s, 0, sizeof *s);
    int rc = 0;
    ModelConfig gc = {0};
    char *dir = xasprintf("%s/ckpt", cfg->run.dir);
    if (comm->rank == 0) {
        int n = 0;
        char **list = ckpt_list(dir, &n);
        for (int i = 0; i < n && !s->path; i++) {
            Err e2;
            if (ckpt_read_meta(list[i], &gc, &s->td, NULL, &e2) == 0) s->path = xstrdup(list[i]);
            else log_warn("unreadable checkpoint: %s", e2.msg);
        }
        ckpt_list_free(list, n);
        if (!s->path) rc = err_set(e, "%s: no readable checkpoint (hint: train the student first)", dir);
    }
    free(dir);
    int64_t st = rc;
    comm_bcast_i64(&st, 1);
    if (st != 0) return -1;
    comm_bcast(&gc, sizeof gc);
    data_tokenizer_bcast(&s->td);
    s->tok = tokenizer_from_data(&s->td, e);
    if (!s->tok) DIE("%s", e->msg);
    model_init(&s->model, &gc);
    if (opt) optim_init(opt, &s->model, cfg->train.beta1, cfg->train.beta2, cfg->train.eps, 0.0, cfg->train.grad_clip);
    if (comm->rank == 0 &&
        ckpt_read(s->path, &s->model, opt ? opt->m : NULL, opt ? opt->v : NULL, &s->st, &s->log, &s->val, e) != 0)
        rc = -1;
    comm_check_all(rc, e->msg, EXIT_RUNTIME);
    comm_bcast(s->model.params, s->model.n_params * sizeof(float));
    if (opt) {
        comm_bcast(opt->m, s->model.n_params * sizeof(float));
        comm_bcast(opt->v, s->model.n_params * sizeof(float));
    }
    comm_bcast(&s->st, sizeof s->st);
    s->n_sep = train_separator_ids(cfg, s->tok, s->sep);
    s->eot = tokenizer_eot_id(s->tok);
    return 0;
}

void student_free(Student *s) {
    if (!s) return;
    model_free(&s->model);
    tokenizer_destroy(s->tok);
    tokenizer_data_free(&s->td);
    metriclog_free(&s->log);
    vallog_free(&s->val);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void student_prompt(const Student *s, const char *text, IntVec *out) {
    tokenizer_encode(s->tok, text, strlen(text), out);
    for (int k = 0; k < s->n_sep; k++) intvec_push(out, s->sep[k]);
}

char *student_text(const Student *s, const int *ids, int n) {
    ByteBuf b = {0};
    Err e;
    if (tokenizer_decode(s->tok, ids, (size_t)n, &b, &e) != 0) DIE("%s", e.msg);
    if (!b.a) bytebuf_put(&b, "", 0);
    /* valid UTF-8 (a token may end inside a character), one line, trimmed */
    char *r = ingest_normalize(b.a, b.n);
    bytebuf_free(&b);
    return r;
}

void student_generate(const Student *s, const GenOptions *o, const Comm *comm, char *const *texts, int n,
                      char ***out, int **tok_len) {
    int k = o->mode == GEN_GREEDY ? 1 : o->k;
    int lo = (int)((int64_t)n * comm->rank / comm->size), hi = (int)((int64_t)n * (comm->rank + 1) / comm->size);
    int m = hi - lo;
    IntVec *pr = xcalloc((size_t)(m ? m : 1), sizeof(IntVec));
    const int **pp = xcalloc((size_t)(m ? m : 1), sizeof(int *));
    int *pl = xcalloc((size_t)(m ? m : 1), sizeof(int));
    int maxp = s->model.cfg.max_seq_len - o->max_new;
    for (int i = 0; i < m; i++) {
        student_prompt(s, texts[lo + i], &pr[i]);
        if ((int)pr[i].n > maxp) { /* keep the end: the separator must stay last */
            memmove(pr[i].a, pr[i].a + (pr[i].n - (size_t)maxp), sizeof(int) * (size_t)maxp);
            pr[i].n = (size_t)maxp;
        }
        pp[i] = pr[i].a;
        pl[i] = (int)pr[i].n;
    }
    GenSeq *g = xcalloc((size_t)(m ? m : 1) * (size_t)k, sizeof(GenSeq));
    if (m > 0) gen_run(&s->model, o, pp, pl, m, s->eot, lo, g);
    /* serialise: for each output "<tokens>\t<text>\0" */
    ByteBuf b = {0};
    for (int i = 0; i < m * k; i++) {
        char *t = student_text(s, g[i].ids, g[i].n);
        bytebuf_printf(&b, "%d\t", g[i].n);
        bytebuf_put(&b, t, strlen(t) + 1);
        free(t);
        gen_seq_free(&g[i]);
    }
    size_t *lens = NULL;
    char *all = comm_gather_bytes(b.a ? b.a : "", b.n, &lens);
    bytebuf_free(&b);
    if (comm->rank == 0) {
        char **res = xcalloc((size_t)n * (size_t)k + 1, sizeof(char *));
        int *tl = xcalloc((size_t)n * (size_t)k + 1, sizeof(int));
        const char *p = all;
        for (int i = 0; i < n * k; i++) {
            char *tab = strchr(p, '\t');
            CHECK(tab, "gathered outputs are malformed");
            tl[i] = atoi(p);
            res[i] = xstrdup(tab + 1);
            p = tab + 1 + strlen(tab + 1) + 1;
        }
        *out = res;
        if (tok_len) *tok_len = tl;
        else free(tl);
        free(all);
        free(lens);
    } else {
        *out = NULL;
        if (tok_len) *tok_len = NULL;
    }
    for (int i = 0; i < m; i++) intvec_free(&pr[i]);
    free(pr), free(pp), free(pl), free(g);
}
