package cafe.registry;

import javax.enterprise.event.Observes;
import javax.inject.Singleton;

import io.vertx.ext.web.Router;

/**
 * Serves Apicurio's Confluent-compatible API at the root as well as under
 * /apis/ccompat/v7, so that clients configured with the plain base URL
 * http://127.0.0.1:8081 (as for Confluent Schema Registry) work unchanged.
 * Requests whose first path segment is one of Confluent's top-level resources
 * are re-routed internally (no redirect) to /apis/ccompat/v7/...
 */
@Singleton
public class CcompatAtRoot {

    static final String PREFIX = "/apis/ccompat/v7";
    static final String[] ROOTS = {"subjects", "schemas", "config", "compatibility", "mode", "contexts", "exporters"};

    void init(@Observes Router router) {
        router.route().order(Integer.MIN_VALUE).handler(rc -> {
            String path = rc.normalizedPath();
            if (isConfluentPath(path)) {
                String uri = rc.request().uri();
                int q = uri.indexOf('?');
                rc.reroute(PREFIX + path + (q >= 0 ? uri.substring(q) : ""));
            } else {
                rc.next();
            }
        });
    }

    static boolean isConfluentPath(String path) {
        if (path == null || path.length() < 2 || path.charAt(0) != '/') {
            return false;
        }
        int end = path.indexOf('/', 1);
        String first = end < 0 ? path.substring(1) : path.substring(1, end);
        for (String r : ROOTS) {
            if (r.equals(first)) {
                return true;
            }
        }
        return false;
    }
}
