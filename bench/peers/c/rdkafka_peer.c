/* librdkafka from C as a benchmark peer: the workloads of `cafe bench produce|consume`
 * with no interpreter in the way, printing the JSON line bench/harness.py parses.
 *
 *   rdkafka_peer produce -b HOST:PORT -t T -n 1000000 --record-size 100 [--throughput R]
 *   rdkafka_peer produce ... --transactional-id ID [--transaction-ms 100]
 *   rdkafka_peer consume -b HOST:PORT -t T -n 1000000 [-g GROUP]
 *   any of them: -X key=value (repeatable) for any librdkafka setting, e.g. SASL_SSL's
 *
 * With --transactional-id the records go in transactions, each committed once it has
 * run --transaction-ms, like the Java tool's --transaction-duration-ms and cafe's
 * --transaction-ms: init_transactions before the clock starts, then begin, produce,
 * commit (which waits for every record of the transaction) and begin again.
 *
 * The harness builds it (bench/peers/build.sh) against the librdkafka shared library
 * bundled in the confluent-kafka wheel of the peers venv, so the C and Python rows
 * measure the same librdkafka; "librdkafka" in the JSON is the version that ran.
 *
 * Latency: one record in --sample-every carries its hand-over time (taken just before
 * rd_kafka_producev, the point where every driver starts the clock) as its opaque;
 * the delivery report callback, run from rd_kafka_poll on this thread, stops it. */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct opts {
    const char *mode, *bootstrap, *topic, *group, *acks, *compression, *transactional_id;
    long long n;
    int record_size, linger_ms, batch_size, sample_every, transaction_ms;
    double throughput, idle_timeout_s;
    const char *extra[64];
    int n_extra;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "rdkafka_peer: %s: %s\n", what, detail);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static void set_extra(rd_kafka_conf_t *conf, const struct opts *o) {
    for (int i = 0; i < o->n_extra; i++) {
        char kv[512];
        snprintf(kv, sizeof kv, "%s", o->extra[i]);
        char *eq = strchr(kv, '=');
        if (!eq)
            die("-X wants KEY=VALUE", o->extra[i]);
        *eq = 0;
        set(conf, kv, eq + 1);
    }
}

/* A failed transaction call ends the run: the benchmark measures committed records only. */
static void check_txn(const char *what, rd_kafka_error_t *e) {
    if (!e)
        return;
    char detail[512];
    snprintf(detail, sizeof detail, "%s%s", rd_kafka_error_string(e),
             rd_kafka_error_is_fatal(e) ? " (fatal)" : "");
    rd_kafka_error_destroy(e);
    die(what, detail);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk, (void)opaque;
    fprintf(stderr, "rdkafka_peer: librdkafka error %s: %s\n", rd_kafka_err2name(err), reason);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank, as cafe's measure.rs and the Python peer: index round((len-1)*q). */
static void print_percentile(const char *name, const double *v, size_t len, double q) {
    if (len == 0)
        printf(", \"%s\": null", name);
    else
        printf(", \"%s\": %.3f", name, v[(size_t)((double)(len - 1) * q + 0.5)] * 1000.0);
}

static void print_head(const struct opts *o, long long records, long long bytes, double elapsed,
                       double cpu) {
    printf("{\"client\": \"librdkafka-c\", \"librdkafka\": \"%s\", \"mode\": \"%s\", \"topic\": \"%s\", "
           "\"records\": %lld, \"bytes\": %lld, \"elapsed_s\": %.6f, \"records_per_s\": %.1f, "
           "\"mib_per_s\": %.3f, \"cpu_s\": %.3f",
           rd_kafka_version_str(), o->mode, o->topic, records, bytes, elapsed, records / elapsed,
           bytes / elapsed / 1048576.0, cpu);
}

/* ------------------------------------------------------------------ produce */

struct produce_state {
    double *lat; /* seconds, one per sampled record */
    size_t n_lat;
    long long delivered, failed;
    char first_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct produce_state *st = opaque;
    if (m->err) {
        if (st->failed++ == 0)
            snprintf(st->first_error, sizeof st->first_error, "%s", rd_kafka_err2str(m->err));
    } else {
        st->delivered++;
    }
    if (m->_private) {
        double sent;
        memcpy(&sent, &m->_private, sizeof sent); /* the hand-over time travels as the opaque */
        st->lat[st->n_lat++] = now_s() - sent;
    }
}

static int produce(const struct opts *o) {
    static struct produce_state st;
    char buf[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    set(conf, "client.id", "bench-librdkafka-c");
    set(conf, "acks", o->acks);
    snprintf(buf, sizeof buf, "%d", o->linger_ms);
    set(conf, "linger.ms", buf);
    snprintf(buf, sizeof buf, "%d", o->batch_size);
    set(conf, "batch.size", buf);
    set(conf, "compression.type", o->compression);
    set(conf, "max.in.flight.requests.per.connection", "5");
    if (o->transactional_id)
        set(conf, "transactional.id", o->transactional_id);
    set_extra(conf, o);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, &st);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    /* Connect and learn the leaders before the clock starts, as the other drivers do. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("metadata", o->topic);
    rd_kafka_metadata_destroy(md);
    if (o->transactional_id) {
        check_txn("init_transactions", rd_kafka_init_transactions(rk, 30000));
        check_txn("begin_transaction", rd_kafka_begin_transaction(rk));
    }
    long long transactions = 0;

    char *value = malloc((size_t)o->record_size);
    for (int i = 0; i < o->record_size; i++)
        value[i] = (char)('A' + i % 26);
    st.lat = malloc(sizeof(double) * (size_t)(o->n / o->sample_every + 1));
    double cpu0 = cpu_s(), start = now_s(), txn_start = start;
    for (long long i = 0; i < o->n; i++) {
        if (o->transactional_id && now_s() - txn_start >= o->transaction_ms / 1000.0) {
            check_txn("commit_transaction", rd_kafka_commit_transaction(rk, -1));
            transactions++;
            check_txn("begin_transaction", rd_kafka_begin_transaction(rk));
            txn_start = now_s();
        }
        if (o->throughput > 0) {
            /* Like the Java tool's throttler: sleep when more than 1 ms ahead of schedule,
             * serving delivery reports meanwhile. rd_kafka_poll returns as soon as it
             * served one, so poll again until the record is due. */
            double ahead;
            while ((ahead = start + (double)i / o->throughput - now_s()) > 0.001)
                rd_kafka_poll(rk, (int)(ahead * 1000));
        }
        void *sent = NULL;
        if (i % o->sample_every == 0) {
            double t = now_s();
            memcpy(&sent, &t, sizeof t);
        }
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE(value, (size_t)o->record_size),
                RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_OPAQUE(sent), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce", rd_kafka_err2str(e));
            rd_kafka_poll(rk, 1); /* queue full: let deliveries drain */
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    if (o->transactional_id) {
        check_txn("commit_transaction", rd_kafka_commit_transaction(rk, -1));
        transactions++;
    }
    rd_kafka_flush(rk, 120000);
    double elapsed = now_s() - start, cpu = cpu_s() - cpu0;
    long long remaining = rd_kafka_outq_len(rk);
    qsort(st.lat, st.n_lat, sizeof(double), cmp_double);
    print_head(o, st.delivered, st.delivered * o->record_size, elapsed, cpu);
    printf(", \"failed\": %lld", st.failed + remaining);
    if (o->transactional_id)
        printf(", \"transactions\": %lld", transactions);
    print_percentile("p50_ms", st.lat, st.n_lat, 0.50);
    print_percentile("p99_ms", st.lat, st.n_lat, 0.99);
    print_percentile("p999_ms", st.lat, st.n_lat, 0.999);
    print_percentile("max_ms", st.lat, st.n_lat, 1.0);
    printf("}\n");
    fflush(stdout);
    if (st.failed)
        fprintf(stderr, "rdkafka_peer: %lld records failed; first error: %s\n", st.failed, st.first_error);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return st.failed + remaining ? 5 : 0;
}

/* ------------------------------------------------------------------ consume */

static int consume(const struct opts *o) {
    double cpu0 = cpu_s(), start = now_s(); /* before connecting: the join is included */
    char group[256];
    if (o->group)
        snprintf(group, sizeof group, "%s", o->group);
    else
        snprintf(group, sizeof group, "bench-rdk-c-%d-%.0f", (int)getpid(), start * 1000);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    set(conf, "client.id", "bench-librdkafka-c");
    set(conf, "group.id", group);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.commit", "true");
    set(conf, "partition.assignment.strategy", "range");
    set_extra(conf, o);
    rd_kafka_conf_set_error_cb(conf, on_error);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, o->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    if (e)
        die("subscribe", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(topics);
    long long count = 0, bytes = 0;
    double first = -1, idle_until = now_s() + o->idle_timeout_s;
    while (count < o->n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (now_s() > idle_until) {
                fprintf(stderr, "rdkafka_peer: stalled after %lld of %lld records\n", count, o->n);
                break;
            }
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "rdkafka_peer: consume error: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (first < 0)
            first = now_s() - start;
        count++;
        bytes += (long long)m->len + (long long)m->key_len;
        rd_kafka_message_destroy(m);
        if ((count & 4095) == 0)
            idle_until = now_s() + o->idle_timeout_s;
    }
    double elapsed = now_s() - start, cpu = cpu_s() - cpu0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    print_head(o, count, bytes, elapsed, cpu);
    if (first >= 0)
        printf(", \"first_record_ms\": %.3f, \"fetch_records_per_s\": %.1f", first * 1000,
               count / (elapsed - first > 1e-9 ? elapsed - first : 1e-9));
    printf("}\n");
    fflush(stdout);
    return count >= o->n ? 0 : 1;
}

/* ------------------------------------------------------------------ main */

static const char *arg(int argc, char **argv, int *i) {
    if (*i + 1 >= argc)
        die("missing value for", argv[*i]);
    return argv[++*i];
}

int main(int argc, char **argv) {
    struct opts o = {.bootstrap = "127.0.0.1:9092", .acks = "1", .compression = "none", .n = 1000000,
                     .record_size = 100, .linger_ms = 5, .batch_size = 16384, .sample_every = 8,
                     .transaction_ms = 100,
                     .idle_timeout_s = 30};
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume")))
        die("usage", "rdkafka_peer produce|consume -t TOPIC [-b HOST:PORT] [-n N] ...");
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-b") || !strcmp(a, "--bootstrap"))
            o.bootstrap = arg(argc, argv, &i);
        else if (!strcmp(a, "-t") || !strcmp(a, "--topic"))
            o.topic = arg(argc, argv, &i);
        else if (!strcmp(a, "-g") || !strcmp(a, "--group"))
            o.group = arg(argc, argv, &i);
        else if (!strcmp(a, "-n") || !strcmp(a, "--num-records"))
            o.n = atoll(arg(argc, argv, &i));
        else if (!strcmp(a, "--record-size"))
            o.record_size = atoi(arg(argc, argv, &i));
        else if (!strcmp(a, "--acks"))
            o.acks = arg(argc, argv, &i);
        else if (!strcmp(a, "--linger-ms"))
            o.linger_ms = atoi(arg(argc, argv, &i));
        else if (!strcmp(a, "--batch-size"))
            o.batch_size = atoi(arg(argc, argv, &i));
        else if (!strcmp(a, "--compression"))
            o.compression = arg(argc, argv, &i);
        else if (!strcmp(a, "--throughput"))
            o.throughput = atof(arg(argc, argv, &i));
        else if (!strcmp(a, "--sample-every"))
            o.sample_every = atoi(arg(argc, argv, &i));
        else if (!strcmp(a, "--transactional-id"))
            o.transactional_id = arg(argc, argv, &i);
        else if (!strcmp(a, "--transaction-ms"))
            o.transaction_ms = atoi(arg(argc, argv, &i));
        else if (!strcmp(a, "--idle-timeout"))
            o.idle_timeout_s = atof(arg(argc, argv, &i));
        else if (!strcmp(a, "-X") && o.n_extra < 64)
            o.extra[o.n_extra++] = arg(argc, argv, &i);
        else
            die("unknown argument", a);
    }
    if (!o.topic)
        die("usage", "-t TOPIC is required");
    if (o.sample_every < 1 || o.n < 1 || o.record_size < 0 || o.transaction_ms < 1)
        die("usage", "-n, --sample-every and --transaction-ms must be >= 1");
    return !strcmp(o.mode, "produce") ? produce(&o) : consume(&o);
}
