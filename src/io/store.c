/* store -- checked HDF5 helpers; see include/io/store.h. */
#include "io/store.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/comm.h"

struct StoreFile {
    hid_t id;
    hid_t xfer;      /* dataset transfer list: independent MPI-IO for a parallel file, else H5P_DEFAULT */
    char *path;      /* the file readers see */
    char *work;      /* staged: the private copy written to; else NULL */
    double committed; /* util_now() of the last commit */
};

static void quiet_hdf5(void) {
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

StoreFile *store_create(const char *path, Err *e) {
    quiet_hdf5();
    hid_t id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0) {
        err_set(e, "%s: cannot create HDF5 file (hint: check the directory exists and is writable)",
                path);
        return NULL;
    }
    StoreFile *f = xcalloc(1, sizeof *f);
    f->id = id;
    f->xfer = H5P_DEFAULT;
    f->path = xstrdup(path);
    return f;
}

StoreFile *store_open(const char *path, int writable, Err *e) {
    quiet_hdf5();
    if (!util_file_exists(path)) {
        err_set(e, "%s: no such file", path);
        return NULL;
    }
    if (H5Fis_hdf5(path) <= 0) {
        err_set(e, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        return NULL;
    }
    hid_t id = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) {
        err_set(e, "%s: not a readable HDF5 file (truncated, corrupt or %s)", path,
                writable ? "not writable" : "unreadable");
        return NULL;
    }
    StoreFile *f = xcalloc(1, sizeof *f);
    f->id = id;
    f->xfer = H5P_DEFAULT;
    f->path = xstrdup(path);
    return f;
}

/* Opens f->work for writing: a copy of f->path, or a new file. */
static int staged_reopen(StoreFile *f, int fresh, Err *e) {
    if (!fresh && util_copy_file(f->path, f->work, e) != 0) return -1;
    f->id = fresh ? H5Fcreate(f->work, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                  : H5Fopen(f->work, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f->id < 0) {
        unlink(f->work);
        return fresh ? err_set(e, "%s: cannot create HDF5 file (hint: check the directory exists and is writable)",
                               f->work)
                     : err_set(e, "%s: not a readable HDF5 file (truncated or corrupt?)", f->path);
    }
    return 0;
}

StoreFile *store_open_staged(const char *path, int create, Err *e) {
    quiet_hdf5();
    if (!create && !util_file_exists(path)) {
        err_set(e, "%s: no such file", path);
        return NULL;
    }
    if (!create && H5Fis_hdf5(path) <= 0) {
        err_set(e, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        return NULL;
    }
    StoreFile *f = xcalloc(1, sizeof *f);
    f->xfer = H5P_DEFAULT;
    f->path = xstrdup(path);
    f->work = xasprintf("%s.tmp", path);
    f->committed = util_now();
    if (staged_reopen(f, create, e) != 0) {
        free(f->path), free(f->work), free(f);
        return NULL;
    }
    return f;
}

/* flush + close the copy, make it the file, fsynced */
static int staged_publish(StoreFile *f, Err *e) {
    int rc = 0;
    if (H5Fclose(f->id) < 0) rc = err_set(e, "%s: close failed (disk full?)", f->work);
    f->id = -1;
    if (rc == 0) rc = util_rename_durable(f->work, f->path, e);
    if (rc != 0) unlink(f->work);
    f->committed = util_now();
    return rc;
}

int store_commit(StoreFile *f, Err *e) {
    if (!f->work) return 0;
    if (staged_publish(f, e) != 0) return -1;
    return staged_reopen(f, 0, e);
}

double store_since_commit(const StoreFile *f) { return util_now() - f->committed; }

void store_abandon(StoreFile *f) {
    if (!f) return;
    if (f->id >= 0) H5Fclose(f->id);
    if (f->work) unlink(f->work);
    free(f->path), free(f->work), free(f);
}

int store_flush(StoreFile *f, Err *e) {
    if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0) return err_set(e, "%s: flush failed", f->path);
    return 0;
}

int store_close(StoreFile *f, Err *e) {
    if (!f) return 0;
    int rc = 0;
    if (f->work) rc = f->id >= 0 ? staged_publish(f, e) : err_set(e, "%s: not open", f->path);
    else if (H5Fclose(f->id) < 0) rc = err_set(e, "%s: close failed (disk full?)", f->path);
    if (f->xfer != H5P_DEFAULT) H5Pclose(f->xfer);
    free(f->path);
    free(f->work);
    free(f);
    return rc;
}

const char *store_path(const StoreFile *f) { return f->path; }

int store_exists(StoreFile *f, const char *obj) {
    if (strcmp(obj, "/") == 0) return 1;
    /* check every prefix: H5Lexists fails on a missing intermediate group */
    char *p = xstrdup(obj);
    int ok = 1;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (H5Lexists(f->id, p, H5P_DEFAULT) <= 0) ok = 0;
            *s = c;
            if (!ok || c == 0) break;
        }
    }
    free(p);
    return ok;
}

int store_delete(StoreFile *f, const char *obj, Err *e) {
    if (!store_exists(f, obj)) return 0;
    if (H5Ldelete(f->id, obj, H5P_DEFAULT) < 0) return err_set(e, "%s: cannot delete %s", f->path, obj);
    return 0;
}

static hid_t make_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    CHECK(lcpl >= 0, "H5Pcreate");
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

static int set_desc(hid_t obj, const char *desc) {
    if (!desc) return 0;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(desc) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, "description") > 0) H5Adelete(obj, "description");
    hid_t a = H5Acreate2(obj, "description", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, t, desc) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static int write_any(StoreFile *f, const char *obj, hid_t ftype, hid_t mtype, const void *x,
                     int ndim, const int64_t *dims, const char *desc, Err *e) {
    if (store_exists(f, obj) && H5Ldelete(f->id, obj, H5P_DEFAULT) < 0)
        return err_set(e, "%s: cannot replace %s", f->path, obj);
    hsize_t hd[8];
    CHECK(ndim >= 0 && ndim <= 8, "ndim %d", ndim);
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    hid_t sp = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, hd, NULL);
    hid_t lcpl = make_lcpl();
    hid_t d = H5Dcreate2(f->id, obj, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (d < 0) rc = err_set(e, "%s: cannot create dataset %s", f->path, obj);
    else if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        rc = err_set(e, "%s: cannot write %s (disk full?)", f->path, obj);
    else if (set_desc(d, desc) < 0)
        rc = err_set(e, "%s: cannot describe %s", f->path, obj);
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return rc;
}

int store_write_f32(StoreFile *f, const char *obj, const float *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e) {
    return write_any(f, obj, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x, ndim, dims, desc, e);
}
int store_write_f64(StoreFile *f, const char *obj, const double *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e) {
    return write_any(f, obj, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, ndim, dims, desc, e);
}
int store_write_i32(StoreFile *f, const char *obj, const int32_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e) {
    return write_any(f, obj, H5T_STD_I32LE, H5T_NATIVE_INT32, x, ndim, dims, desc, e);
}
int store_write_i64(StoreFile *f, const char *obj, const int64_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e) {
    return write_any(f, obj, H5T_STD_I64LE, H5T_NATIVE_INT64, x, ndim, dims, desc, e);
}
int store_write_u64(StoreFile *f, const char *obj, const uint64_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e) {
    return write_any(f, obj, H5T_STD_U64LE, H5T_NATIVE_UINT64, x, ndim, dims, desc, e);
}
int store_write_u8(StoreFile *f, const char *obj, const uint8_t *x, int ndim, const int64_t *dims,
                   const char *desc, Err *e) {
    return write_any(f, obj, H5T_STD_U8LE, H5T_NATIVE_UINT8, x, ndim, dims, desc, e);
}

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int store_write_strings(StoreFile *f, const char *obj, const char *const *s, int ndim,
                        const int64_t *dims, const char *desc, Err *e) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    const char **tmp = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) tmp[i] = s[i] ? s[i] : "";
    hid_t t = vlen_str_type();
    int rc = write_any(f, obj, t, t, tmp, ndim, dims, desc, e);
    H5Tclose(t);
    free(tmp);
    return rc;
}

int store_write_string(StoreFile *f, const char *obj, const char *s, const char *desc, Err *e) {
    return store_write_strings(f, obj, &s, 0, NULL, desc, e);
}

int store_dims(StoreFile *f, const char *obj, int *ndim, int64_t dims[4], Err *e) {
    if (!store_exists(f, obj)) return err_set(e, "%s: missing dataset %s", f->path, obj);
    hid_t d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    if (d < 0) return err_set(e, "%s: %s is not a readable dataset", f->path, obj);
    hid_t sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t hd[32];
    int rc = 0;
    if (nd < 0 || nd > 4) rc = err_set(e, "%s: %s has unsupported rank %d", f->path, obj, nd);
    else {
        H5Sget_simple_extent_dims(sp, hd, NULL);
        *ndim = nd;
        for (int i = 0; i < nd; i++) dims[i] = (int64_t)hd[i];
    }
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

/* Elements per byte of the file a dataset may claim: every element of an
 * uncompressed dataset (all store writes) takes a byte or more in the file,
 * so a dataspace beyond this is a corrupt file, not an allocation to try. */
enum { STORE_MAX_ELEMS_PER_BYTE = 64 };

/* The element count of dataset obj, or -1 with e set when its dimensions
 * overflow or claim more than the file can hold (a corrupt file made
 * store_read_alloc ask for 83 PB and die: found by fuzz_h5_run). */
static int64_t count_of(StoreFile *f, const char *obj, Err *e) {
    int nd;
    int64_t dims[4];
    if (store_dims(f, obj, &nd, dims, e) != 0) return -1;
    hsize_t size = 0;
    int64_t limit = INT64_MAX;
    if (H5Fget_filesize(f->id, &size) >= 0 && size < (hsize_t)(INT64_MAX / STORE_MAX_ELEMS_PER_BYTE) - (1 << 20))
        limit = (int64_t)size * STORE_MAX_ELEMS_PER_BYTE + (1 << 20);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > limit / dims[i]))
            return err_set(e, "%s: %s claims more elements than the file can hold (truncated or corrupt file?)",
                           f->path, obj);
        n *= dims[i];
    }
    return n;
}

static int read_any(StoreFile *f, const char *obj, hid_t mtype, void *x, int64_t n, Err *e) {
    int64_t have = count_of(f, obj, e);
    if (have < 0) return -1;
    if (n >= 0 && have != n)
        return err_set(e, "%s: %s has %lld elements, expected %lld (hint: file from another "
                          "configuration?)",
                       f->path, obj, (long long)have, (long long)n);
    hid_t d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    if (d < 0) return err_set(e, "%s: cannot open %s", f->path, obj);
    hid_t ft = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(ft);
    int rc = 0;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        rc = err_set(e, "%s: %s is not numeric", f->path, obj);
    else if (have > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0)
        rc = err_set(e, "%s: cannot read %s (truncated or corrupt file?)", f->path, obj);
    H5Tclose(ft);
    H5Dclose(d);
    return rc;
}

int store_read_f32(StoreFile *f, const char *obj, float *x, int64_t n, Err *e) {
    return read_any(f, obj, H5T_NATIVE_FLOAT, x, n, e);
}
int store_read_f64(StoreFile *f, const char *obj, double *x, int64_t n, Err *e) {
    return read_any(f, obj, H5T_NATIVE_DOUBLE, x, n, e);
}
int store_read_i32(StoreFile *f, const char *obj, int32_t *x, int64_t n, Err *e) {
    return read_any(f, obj, H5T_NATIVE_INT32, x, n, e);
}
int store_read_i64(StoreFile *f, const char *obj, int64_t *x, int64_t n, Err *e) {
    return read_any(f, obj, H5T_NATIVE_INT64, x, n, e);
}
int store_read_u64(StoreFile *f, const char *obj, uint64_t *x, int64_t n, Err *e) {
    return read_any(f, obj, H5T_NATIVE_UINT64, x, n, e);
}

void *store_read_alloc(StoreFile *f, const char *obj, char type, int64_t *n_out, Err *e) {
    int64_t n = count_of(f, obj, e);
    if (n < 0) return NULL;
    size_t sz = type == 'f' ? 4 : type == 'd' ? 8 : type == 'i' ? 4 : type == 'l' ? 8 : 1;
    hid_t mt = type == 'f'   ? H5T_NATIVE_FLOAT
               : type == 'd' ? H5T_NATIVE_DOUBLE
               : type == 'i' ? H5T_NATIVE_INT32
               : type == 'l' ? H5T_NATIVE_INT64
                             : H5T_NATIVE_UINT8;
    void *x = xmalloc(sz * (size_t)(n ? n : 1));
    if (read_any(f, obj, mt, x, n, e) != 0) {
        free(x);
        return NULL;
    }
    if (n_out) *n_out = n;
    return x;
}

void store_free_strings(char **s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* The memory HDF5 allocates for the variable-length strings of one read,
 * kept in a list and freed all at once after it: also the strings HDF5
 * 1.10 converts and then loses when a read fails half-way (H5T__conv_vlen
 * does not free them on its error path; found by fuzz_h5_run). */
typedef struct VlenBlock {
    struct VlenBlock *next;
    max_align_t data[];
} VlenBlock;

static void *vlen_alloc(size_t n, void *info) {
    VlenBlock *b = malloc(sizeof *b + n), **head = info;
    if (!b) return NULL;
    b->next = *head;
    *head = b;
    return b->data;
}

static void vlen_keep(void *p, void *info) { (void)p, (void)info; } /* freed by vlen_free_all */

static void vlen_free_all(VlenBlock *b) {
    while (b) {
        VlenBlock *next = b->next;
        free(b);
        b = next;
    }
}

char **store_read_strings(StoreFile *f, const char *obj, int64_t *n_out, Err *e) {
    int64_t n = count_of(f, obj, e);
    if (n < 0) return NULL;
    hid_t d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    if (d < 0) {
        err_set(e, "%s: cannot open %s", f->path, obj);
        return NULL;
    }
    hid_t ft = H5Dget_type(d);
    char **out = NULL;
    if (H5Tget_class(ft) != H5T_STRING) {
        err_set(e, "%s: %s is not a string dataset", f->path, obj);
    } else if (H5Tis_variable_str(ft) > 0) {
        char **raw = xcalloc((size_t)(n ? n : 1), sizeof(char *));
        hid_t mt = vlen_str_type(), xf = H5Pcreate(H5P_DATASET_XFER);
        VlenBlock *blocks = NULL;
        if (xf < 0 || H5Pset_vlen_mem_manager(xf, vlen_alloc, &blocks, vlen_keep, NULL) < 0) {
            err_set(e, "%s: cannot set up reading strings %s", f->path, obj);
        } else if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, xf, raw) < 0) {
            err_set(e, "%s: cannot read strings %s (truncated or corrupt file?)", f->path, obj);
        } else {
            out = xcalloc((size_t)(n ? n : 1), sizeof(char *));
            for (int64_t i = 0; i < n; i++) out[i] = xstrdup(raw[i] ? raw[i] : "");
        }
        vlen_free_all(blocks);
        if (xf >= 0) H5Pclose(xf);
        H5Tclose(mt);
        free(raw);
    } else {
        size_t w = H5Tget_size(ft);
        char *buf = xmalloc(w * (size_t)(n ? n : 1) + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, w);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            err_set(e, "%s: cannot read strings %s", f->path, obj);
        } else {
            out = xcalloc((size_t)(n ? n : 1), sizeof(char *));
            for (int64_t i = 0; i < n; i++) out[i] = xstrndup(buf + (size_t)i * w, strnlen(buf + (size_t)i * w, w));
        }
        H5Tclose(mt);
        free(buf);
    }
    H5Tclose(ft);
    H5Dclose(d);
    if (out && n_out) *n_out = n;
    return out;
}

char *store_read_string(StoreFile *f, const char *obj, Err *e) {
    int64_t n = 0;
    char **s = store_read_strings(f, obj, &n, e);
    if (!s) return NULL;
    if (n != 1) {
        store_free_strings(s, n);
        err_set(e, "%s: %s is not a single string", f->path, obj);
        return NULL;
    }
    char *r = s[0];
    free(s);
    return r;
}

/* ---- attributes ---------------------------------------------------------- */

static hid_t open_obj(StoreFile *f, const char *obj) {
    return H5Oopen(f->id, obj, H5P_DEFAULT);
}

static int set_attr(StoreFile *f, const char *obj, const char *name, hid_t t, const void *v, Err *e) {
    hid_t o = open_obj(f, obj);
    if (o < 0) return err_set(e, "%s: no object %s for attribute %s", f->path, obj, name);
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, t, v) >= 0) ? 0
                                                : err_set(e, "%s: cannot write attribute %s:%s",
                                                          f->path, obj, name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    return rc;
}

int store_set_attr_str(StoreFile *f, const char *obj, const char *name, const char *v, Err *e) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = set_attr(f, obj, name, t, v, e);
    H5Tclose(t);
    return rc;
}

int store_set_attr_i64(StoreFile *f, const char *obj, const char *name, int64_t v, Err *e) {
    return set_attr(f, obj, name, H5T_NATIVE_INT64, &v, e);
}

int store_set_attr_f64(StoreFile *f, const char *obj, const char *name, double v, Err *e) {
    return set_attr(f, obj, name, H5T_NATIVE_DOUBLE, &v, e);
}

static int get_attr(StoreFile *f, const char *obj, const char *name, hid_t t, void *v, Err *e) {
    hid_t o = open_obj(f, obj);
    if (o < 0) return err_set(e, "%s: missing %s", f->path, obj);
    int rc = 0;
    if (H5Aexists(o, name) <= 0) rc = err_set(e, "%s: %s has no attribute %s", f->path, obj, name);
    else {
        hid_t a = H5Aopen(o, name, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, t, v) < 0)
            rc = err_set(e, "%s: cannot read attribute %s:%s", f->path, obj, name);
        if (a >= 0) H5Aclose(a);
    }
    H5Oclose(o);
    return rc;
}

int store_get_attr_i64(StoreFile *f, const char *obj, const char *name, int64_t *v, Err *e) {
    return get_attr(f, obj, name, H5T_NATIVE_INT64, v, e);
}

int store_get_attr_f64(StoreFile *f, const char *obj, const char *name, double *v, Err *e) {
    return get_attr(f, obj, name, H5T_NATIVE_DOUBLE, v, e);
}

char *store_get_attr_str(StoreFile *f, const char *obj, const char *name, Err *e) {
    hid_t o = open_obj(f, obj);
    if (o < 0) {
        err_set(e, "%s: missing %s", f->path, obj);
        return NULL;
    }
    char *out = NULL;
    if (H5Aexists(o, name) <= 0) {
        err_set(e, "%s: %s has no attribute %s", f->path, obj, name);
    } else {
        hid_t a = H5Aopen(o, name, H5P_DEFAULT);
        hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
        if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
            if (H5Tis_variable_str(ft) > 0) {
                char *raw = NULL;
                hid_t mt = vlen_str_type();
                if (H5Aread(a, mt, &raw) >= 0 && raw) {
                    out = xstrdup(raw);
                    H5free_memory(raw);
                }
                H5Tclose(mt);
            } else {
                size_t w = H5Tget_size(ft);
                char *buf = xcalloc(w + 1, 1);
                if (H5Aread(a, ft, buf) >= 0) out = buf;
                else free(buf);
            }
        }
        if (!out) err_set(e, "%s: cannot read string attribute %s:%s", f->path, obj, name);
        if (ft >= 0) H5Tclose(ft);
        if (a >= 0) H5Aclose(a);
    }
    H5Oclose(o);
    return out;
}

/* ---- extendible series ------------------------------------------------------ */

static int append_any(StoreFile *f, const char *obj, hid_t ftype, hid_t mtype, const void *x,
                      int64_t n, const char *desc, Err *e) {
    hid_t d;
    if (!store_exists(f, obj)) {
        hsize_t cur = 0, mx = H5S_UNLIMITED, chunk = 1024;
        hid_t sp = H5Screate_simple(1, &cur, &mx);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, &chunk);
        hid_t lcpl = make_lcpl();
        d = H5Dcreate2(f->id, obj, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
        H5Pclose(lcpl);
        H5Pclose(dcpl);
        H5Sclose(sp);
        if (d < 0) return err_set(e, "%s: cannot create series %s", f->path, obj);
        set_desc(d, desc);
    } else {
        d = H5Dopen2(f->id, obj, H5P_DEFAULT);
        if (d < 0) return err_set(e, "%s: cannot open series %s", f->path, obj);
    }
    hid_t sp = H5Dget_space(d);
    hsize_t cur;
    H5Sget_simple_extent_dims(sp, &cur, NULL);
    H5Sclose(sp);
    hsize_t nsz = cur + (hsize_t)n, cnt = (hsize_t)n;
    int rc = 0;
    if (H5Dset_extent(d, &nsz) < 0) rc = err_set(e, "%s: cannot extend %s", f->path, obj);
    else {
        hid_t fs = H5Dget_space(d);
        hid_t ms = H5Screate_simple(1, &cnt, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &cur, NULL, &cnt, NULL) < 0 ||
            H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, x) < 0)
            rc = err_set(e, "%s: cannot append to %s (disk full?)", f->path, obj);
        H5Sclose(ms);
        H5Sclose(fs);
    }
    H5Dclose(d);
    return rc;
}

int store_append_f64(StoreFile *f, const char *obj, const double *x, int64_t n, const char *desc,
                     Err *e) {
    return append_any(f, obj, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, n, desc, e);
}

int store_append_i64(StoreFile *f, const char *obj, const int64_t *x, int64_t n, const char *desc,
                     Err *e) {
    return append_any(f, obj, H5T_STD_I64LE, H5T_NATIVE_INT64, x, n, desc, e);
}

int store_truncate(StoreFile *f, const char *obj, int64_t n, Err *e) {
    if (!store_exists(f, obj)) return 0;
    hid_t d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    if (d < 0) return err_set(e, "%s: cannot open %s", f->path, obj);
    hid_t sp = H5Dget_space(d);
    hsize_t cur;
    H5Sget_simple_extent_dims(sp, &cur, NULL);
    H5Sclose(sp);
    int rc = 0;
    if ((int64_t)cur > n) {
        hsize_t nsz = (hsize_t)n;
        if (H5Dset_extent(d, &nsz) < 0) rc = err_set(e, "%s: cannot truncate %s", f->path, obj);
    }
    H5Dclose(d);
    return rc;
}

void store_hdf5_version(char *buf, size_t n) {
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, n, "HDF5 %u.%u.%u", maj, min, rel);
}

/* ---- float32 element ranges and parallel files ------------------------------- */

/* Selects the elements [lo, hi) (row-major) of sp, of rank nd (1 or 2) and
 * dims d: a partial first row, whole rows, a partial last row (each only if
 * there is one); none when lo == hi. */
static herr_t select_range(hid_t sp, int nd, const hsize_t *d, hsize_t lo, hsize_t hi) {
    if (lo == hi) return H5Sselect_none(sp);
    if (nd == 1) {
        hsize_t cnt = hi - lo;
        return H5Sselect_hyperslab(sp, H5S_SELECT_SET, &lo, NULL, &cnt, NULL);
    }
    hsize_t C = d[1], r0 = lo / C, c0 = lo % C, r1 = hi / C, c1 = hi % C;
    hsize_t start[3][2], cnt[3][2];
    int nb = 0;
    if (r0 == r1) { /* within one row */
        start[nb][0] = r0, start[nb][1] = c0, cnt[nb][0] = 1, cnt[nb++][1] = c1 - c0;
    } else {
        if (c0 > 0) start[nb][0] = r0, start[nb][1] = c0, cnt[nb][0] = 1, cnt[nb++][1] = C - c0, r0++;
        if (r1 > r0) start[nb][0] = r0, start[nb][1] = 0, cnt[nb][0] = r1 - r0, cnt[nb++][1] = C;
        if (c1 > 0) start[nb][0] = r1, start[nb][1] = 0, cnt[nb][0] = 1, cnt[nb++][1] = c1;
    }
    for (int b = 0; b < nb; b++)
        if (H5Sselect_hyperslab(sp, b ? H5S_SELECT_OR : H5S_SELECT_SET, start[b], NULL, cnt[b], NULL) < 0) return -1;
    return 0;
}

/* Collective: rc agreed over all ranks (the lowest failing rank's message
 * into e on every rank). */
static int agree(int rc, Err *e) {
    Err m = {{0}};
    if (rc && e) m = *e;
    if (comm_agree(rc, m.msg, sizeof m.msg) == 0) return 0;
    return err_set(e, "%s", m.msg);
}

/* A dataset with [lo, hi) selected in its file space fs and all of a 1-D
 * memory space ms of hi - lo elements (none when empty). */
typedef struct {
    hid_t d, fs, ms;
    hsize_t n;
} RangeSel;

static void range_close(RangeSel *s) {
    if (s->ms >= 0) H5Sclose(s->ms);
    if (s->fs >= 0) H5Sclose(s->fs);
    if (s->d >= 0) H5Dclose(s->d);
    s->d = s->fs = s->ms = -1;
}

/* 0 with s open, or -1 with e set (and s closed). */
static int range_open(StoreFile *f, const char *obj, int64_t lo, int64_t hi, const char *what, RangeSel *s, Err *e) {
    s->d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    s->fs = s->d >= 0 ? H5Dget_space(s->d) : -1, s->ms = -1;
    hid_t ft = s->d >= 0 ? H5Dget_type(s->d) : -1;
    int nd = s->fs >= 0 ? H5Sget_simple_extent_ndims(s->fs) : -1;
    hsize_t dims[2] = {0, 0}, total = 1, one = 1;
    s->n = (hsize_t)(hi - lo);
    int rc = 0;
    if (s->d < 0) rc = err_set(e, "%s: missing dataset %s", f->path, obj);
    else if (nd < 1 || nd > 2 || ft < 0 || H5Tget_class(ft) != H5T_FLOAT)
        rc = err_set(e, "%s: %s is not a 1-D or 2-D float dataset", f->path, obj);
    else {
        H5Sget_simple_extent_dims(s->fs, dims, NULL);
        for (int i = 0; i < nd; i++) total *= dims[i];
        if (lo < 0 || hi < lo || (hsize_t)hi > total)
            rc = err_set(e, "%s: %s has %llu elements, cannot %s [%lld, %lld)", f->path, obj,
                         (unsigned long long)total, what, (long long)lo, (long long)hi);
    }
    if (ft >= 0) H5Tclose(ft);
    if (rc == 0) {
        s->ms = H5Screate_simple(1, s->n ? &s->n : &one, NULL);
        if (s->ms < 0 || select_range(s->fs, nd, dims, (hsize_t)lo, (hsize_t)hi) < 0 ||
            (!s->n && H5Sselect_none(s->ms) < 0))
            rc = err_set(e, "%s: cannot select [%lld, %lld) of %s", f->path, (long long)lo, (long long)hi, obj);
    }
    if (rc) range_close(s);
    return rc;
}

int store_read_f32_range(StoreFile *f, const char *obj, int64_t lo, int64_t hi, float *x, Err *e) {
    RangeSel s;
    if (range_open(f, obj, lo, hi, "read", &s, e) != 0) return -1;
    float none; /* nothing is read into it */
    int rc = 0;
    if (H5Dread(s.d, H5T_NATIVE_FLOAT, s.ms, s.fs, H5P_DEFAULT, s.n ? x : &none) < 0)
        rc = err_set(e, "%s: cannot read [%lld, %lld) of %s (truncated or corrupt file?)", f->path, (long long)lo,
                     (long long)hi, obj);
    range_close(&s);
    return rc;
}

int store_write_f32_ranges(StoreFile *f, int n, const StoreRange *r, Err *e) {
    int parallel = f->xfer != H5P_DEFAULT, rc = 0;
    /* every dataset is opened and checked, also where this rank writes nothing; on a parallel file the
     * writes are independent (no rank waits for another) and the status is agreed at the end */
    for (int i = 0; i < n && rc == 0; i++) {
        RangeSel s;
        if (range_open(f, r[i].obj, r[i].lo, r[i].hi, "write", &s, e) != 0) {
            rc = -1;
            break;
        }
        if (s.n && H5Dwrite(s.d, H5T_NATIVE_FLOAT, s.ms, s.fs, f->xfer, r[i].x) < 0)
            rc = err_set(e, "%s: cannot write [%lld, %lld) of %s (disk full?)", f->path, (long long)r[i].lo,
                         (long long)r[i].hi, r[i].obj);
        range_close(&s);
    }
    return parallel ? agree(rc, e) : rc;
}

int store_create_f32(StoreFile *f, const char *obj, int ndim, const int64_t *dims, const char *desc, Err *e) {
    CHECK(ndim == 1 || ndim == 2, "ndim %d", ndim);
    if (store_exists(f, obj) && H5Ldelete(f->id, obj, H5P_DEFAULT) < 0)
        return err_set(e, "%s: cannot replace %s", f->path, obj);
    hsize_t hd[2] = {(hsize_t)dims[0], ndim == 2 ? (hsize_t)dims[1] : 1};
    hid_t sp = H5Screate_simple(ndim, hd, NULL), lcpl = make_lcpl(), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = 0;
    if (sp < 0 || dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
        rc = err_set(e, "%s: cannot prepare dataset %s", f->path, obj);
    hid_t d = rc ? -1 : H5Dcreate2(f->id, obj, H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    if (rc == 0 && d < 0) rc = err_set(e, "%s: cannot create dataset %s (disk full?)", f->path, obj);
    if (rc == 0 && set_desc(d, desc) < 0) rc = err_set(e, "%s: cannot describe %s", f->path, obj);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

StoreFile *store_open_parallel(const char *path, Err *e) {
    quiet_hdf5();
#ifdef H5_HAVE_PARALLEL
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), xfer = H5Pcreate(H5P_DATASET_XFER);
    hid_t id = -1;
    if (fapl < 0 || xfer < 0 || H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL) < 0 ||
        H5Pset_dxpl_mpio(xfer, H5FD_MPIO_INDEPENDENT) < 0)
        err_set(e, "%s: cannot set up MPI-IO (hint: is MPI initialised?)", path);
    else if ((id = H5Fopen(path, H5F_ACC_RDWR, fapl)) < 0)
        err_set(e, "%s: cannot open for parallel writing (hint: the directory must be on a file system every "
                   "rank sees, with MPI-IO support)", path);
    if (fapl >= 0) H5Pclose(fapl);
    if (id < 0) {
        if (xfer >= 0) H5Pclose(xfer);
        return NULL;
    }
    StoreFile *f = xcalloc(1, sizeof *f);
    f->id = id;
    f->xfer = xfer;
    f->path = xstrdup(path);
    return f;
#else
    err_set(e, "%s: this HDF5 has no MPI-IO (hint: build with the parallel HDF5, pkg-config hdf5-openmpi)", path);
    return NULL;
#endif
}

typedef struct {
    char **names;
    int n, cap;
} ListCtx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *ud) {
    (void)g, (void)info;
    ListCtx *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->names = xrealloc(c->names, sizeof(char *) * (size_t)c->cap);
    }
    c->names[c->n++] = xstrdup(name);
    return 0;
}

char **store_list(StoreFile *f, const char *group, int *n) {
    *n = 0;
    if (!store_exists(f, group)) return NULL;
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    if (g < 0) return NULL;
    ListCtx c = {0};
    hsize_t idx = 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &c);
    H5Gclose(g);
    if (!c.names) c.names = xmalloc(sizeof(char *)); /* an empty group: an empty list, not "not a group" */
    *n = c.n;
    return c.names;
}
