"""Smoke check: confluent-kafka's SchemaRegistryClient and JSONSerializer against a
registry started by scripts/registry.sh (no Kafka broker needed).
Usage: python registry/check_confluent_client.py [BASE_URL]"""
import sys, json
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
base = sys.argv[1] if len(sys.argv) > 1 else 'http://127.0.0.1:8081'
c = SchemaRegistryClient({'url': base})
js = json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {"n": {"type": "integer"}}})
sid = c.register_schema('py-value', Schema(js, 'JSON'))
print('register ->', sid)
print('register again ->', c.register_schema('py-value', Schema(js, 'JSON')))
s = c.get_schema(sid)
print('get_schema ->', s.schema_type, s.schema_str)
print('latest ->', c.get_latest_version('py-value'))
print('subjects ->', c.get_subjects())
try:
    c.register_schema('py2-value', Schema(json.dumps({"type": "object"}), 'JSON'))
except SchemaRegistryError as e:
    print('plain {"type":"object"} ->', e.http_status_code, e.error_code, e.error_message)
try:
    c.get_schema(9999)
except SchemaRegistryError as e:
    print('missing id ->', e.http_status_code, e.error_code, e.error_message)
# full serializer path (no broker needed)
from confluent_kafka.schema_registry.json_schema import JSONSerializer, JSONDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
ser = JSONSerializer(js, c)
ctx = SerializationContext('py', MessageField.VALUE)
b = ser({"n": 5}, ctx)
print('serialized ->', b[:5].hex(), len(b))
de = JSONDeserializer(None, schema_registry_client=c)
print('deserialized ->', de(b, ctx))
