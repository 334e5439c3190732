package cafe.registry.steps;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

import javax.inject.Singleton;

import org.jboss.jandex.AnnotationInstance;
import org.jboss.jandex.AnnotationTarget;
import org.jboss.jandex.AnnotationValue;
import org.jboss.jandex.DotName;
import org.jboss.jandex.FieldInfo;
import org.jboss.jandex.Type;

import apicurio.common.app.components.config.index.DynamicPropertiesInfoRecorder;
import io.apicurio.common.apps.config.DynamicConfigPropertyDef;
import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import io.quarkus.arc.deployment.SyntheticBeanBuildItem;
import io.quarkus.deployment.annotations.BuildStep;
import io.quarkus.deployment.annotations.ExecutionTime;
import io.quarkus.deployment.annotations.Record;
import io.quarkus.deployment.builditem.CombinedIndexBuildItem;

/**
 * Supplies the {@link DynamicConfigPropertyList} bean that the registry's
 * dynamic-config code injects: one definition per field annotated with both
 * {@code @Dynamic} and {@code @ConfigProperty}, found in the build's class index
 * and handed to the runtime jar's recorder at static init.
 */
public class DynamicConfigIndexStep {

    static final DotName DYNAMIC = DotName.createSimple("io.apicurio.common.apps.config.Dynamic");
    static final DotName CONFIG_PROPERTY =
            DotName.createSimple("org.eclipse.microprofile.config.inject.ConfigProperty");
    static final DotName SUPPLIER = DotName.createSimple(Supplier.class.getName());

    @BuildStep
    @Record(ExecutionTime.STATIC_INIT)
    SyntheticBeanBuildItem dynamicConfigProperties(DynamicPropertiesInfoRecorder recorder,
                                                   CombinedIndexBuildItem index) {
        List<DynamicConfigPropertyDef> defs = new ArrayList<>();
        for (AnnotationInstance dynamic : index.getIndex().getAnnotations(DYNAMIC)) {
            if (dynamic.target().kind() != AnnotationTarget.Kind.FIELD) {
                continue;
            }
            FieldInfo field = dynamic.target().asField();
            AnnotationInstance property = field.annotation(CONFIG_PROPERTY);
            if (property == null || property.value("name") == null) {
                continue;
            }
            DynamicConfigPropertyDef def = new DynamicConfigPropertyDef(
                    property.value("name").asString(), valueClass(field.type()),
                    stringOrNull(property.value("defaultValue")));
            def.setLabel(stringOrNull(dynamic.value("label")));
            def.setDescription(stringOrNull(dynamic.value("description")));
            AnnotationValue requires = dynamic.value("requires");
            if (requires != null) {
                def.setRequires(requires.asStringArray());
            }
            defs.add(def);
        }
        return SyntheticBeanBuildItem.configure(DynamicConfigPropertyList.class)
                .scope(Singleton.class)
                .unremovable()
                .runtimeValue(recorder.initializePropertiesInfo(defs))
                .done();
    }

    /** The configured value's class: {@code T} of a {@code Supplier<T>} field, else the field's own type. */
    static Class<?> valueClass(Type type) {
        Type value = type;
        if (type.kind() == Type.Kind.PARAMETERIZED_TYPE && type.name().equals(SUPPLIER)) {
            value = type.asParameterizedType().arguments().get(0);
        }
        switch (value.name().toString()) {
            case "boolean": return Boolean.class;
            case "int": return Integer.class;
            case "long": return Long.class;
            default:
                try {
                    return Class.forName(value.name().toString(), false,
                            Thread.currentThread().getContextClassLoader());
                } catch (ClassNotFoundException e) {
                    return String.class;
                }
        }
    }

    static String stringOrNull(AnnotationValue v) {
        return v == null ? null : v.asString();
    }
}
