// A Java consumer-group member for bench/rebalance.py: joins GROUP on TOPIC with
// group.protocol PROTOCOL (classic or consumer) at the client's defaults and
// prints one JSON line per assignment change and per poll that returned records:
//   {"event":"assigned","partitions":[0,3]}   (what was added)
//   {"event":"revoked","partitions":[1]}      (what was taken away, or lost)
//   {"records":{"0":12,"3":4}}                (records per partition in one poll)
// SIGTERM closes the consumer (final commit, leave) and exits.
//
// Compiled at bench time against the kafka-clients jar (bench/rebalance.py);
// the class file stays under .run/, never in git.

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class RebalanceMember {
    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static String partitions(Collection<TopicPartition> tps) {
        return tps.stream().map(tp -> Integer.toString(tp.partition())).sorted().collect(Collectors.joining(",", "[", "]"));
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 4) {
            System.err.println("usage: RebalanceMember BOOTSTRAP TOPIC GROUP classic|consumer");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", args[2]);
        p.put("group.protocol", args[3]);
        p.put("auto.offset.reset", "latest");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                main.join(15_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        consumer.subscribe(List.of(args[1]), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> tps) {
                if (!tps.isEmpty()) emit("{\"event\":\"revoked\",\"partitions\":" + partitions(tps) + "}");
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> tps) {
                onPartitionsRevoked(tps);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> tps) {
                if (!tps.isEmpty()) emit("{\"event\":\"assigned\",\"partitions\":" + partitions(tps) + "}");
            }
        });
        try {
            while (true) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
                if (records.isEmpty()) continue;
                Map<Integer, Integer> counts = new TreeMap<>();
                for (ConsumerRecord<byte[], byte[]> r : records) counts.merge(r.partition(), 1, Integer::sum);
                emit(counts.entrySet().stream().map(e -> "\"" + e.getKey() + "\":" + e.getValue())
                        .collect(Collectors.joining(",", "{\"records\":{", "}}")));
            }
        } catch (WakeupException e) {
            // SIGTERM: close below.
        } finally {
            consumer.close();
        }
    }
}
