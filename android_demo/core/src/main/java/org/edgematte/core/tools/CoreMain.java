package org.edgematte.core.tools;

import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.edgematte.core.Background;
import org.edgematte.core.GoldenWriter;
import org.edgematte.core.Layout;
import org.edgematte.core.Manifest;
import org.edgematte.core.NdArray;
import org.edgematte.core.Npy;
import org.edgematte.core.Pixels;
import org.edgematte.core.PreprocessState;
import org.edgematte.core.Profile;
import org.edgematte.core.Profiles;
import org.edgematte.core.QuantParams;
import org.edgematte.core.Quantization;
import org.edgematte.core.Size;
import org.edgematte.core.Steps;
import org.edgematte.core.Verification;

/**
 * Host command line around the core, so a Python test can run Java pre-processing, the model in Python, and
 * Java post-processing, and compare with the all-Python pipeline:
 *
 * <pre>
 * preprocess  --profile P --model-size HxW --layout nchw|nhwc [--manifest MANIFEST_JSON] [--quant int8:SCALE:ZP]
 *             IMAGES_DIR TENSORS_DIR
 *     every IMAGES_DIR/NAME.npy (uint8 HxWx3 or HxWx4) -> TENSORS_DIR/NAME.npy (float32 tensor, or int8/uint8)
 * postprocess --profile P --model-size HxW --layout nchw|nhwc [--manifest MANIFEST_JSON] [--dequant int8:SCALE:ZP]
 *             [--colour R,G,B] IMAGES_DIR OUTPUTS_DIR OUT_DIR
 *     every OUTPUTS_DIR/NAME.npy (the model output) -> OUT_DIR in the golden-vector format: per case
 *     post_alpha, alpha8, composite_colour, composite_blur
 * android-artefacts MANIFEST_JSON
 *     the paths of the manifest's artefacts the app can run (Manifest.androidArtefacts), one a line
 * </pre>
 * {@code --manifest}: the profile takes the normalization of the manifest's {@code model.transforms}
 * ({@link Profiles#forManifest}), as the app does; without it, the profile's default (mean = std = 0.5).
 */
public final class CoreMain {

    private CoreMain() {
    }

    public static void main(String[] args) {
        try {
            System.exit(run(args));
        } catch (IllegalArgumentException e) {
            System.err.println("edgematte-core: error: " + e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            System.err.println("edgematte-core: error: " + e);
            System.exit(1);
        }
    }

    static int run(String[] args) throws Exception {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: preprocess|postprocess [options] DIRS... | android-artefacts "
                    + "MANIFEST (see CoreMain's doc)");
        }
        if (args[0].equals("android-artefacts")) {
            if (args.length != 2) {
                throw new IllegalArgumentException("usage: android-artefacts MANIFEST_JSON");
            }
            for (Manifest.Artefact artefact : Manifest.read(new File(args[1])).androidArtefacts()) {
                System.out.println(artefact.path);
            }
            return 0;
        }
        Map<String, String> options = new LinkedHashMap<>();
        List<String> positional = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            if (args[i].startsWith("--")) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(args[i] + " needs a value");
                }
                options.put(args[i].substring(2), args[++i]);
            } else {
                positional.add(args[i]);
            }
        }
        String profileName = option(options, "profile", "android");
        Profile profile = options.containsKey("manifest")
                ? Profiles.forManifest(Manifest.read(new File(options.get("manifest"))), profileName)
                : Profiles.get(profileName);
        Size modelSize = Size.parse(option(options, "model-size", null));
        Layout layout = Layout.fromKey(option(options, "layout", "nchw"));
        if (args[0].equals("preprocess")) {
            expect(positional, 2, "preprocess IMAGES_DIR TENSORS_DIR");
            QuantParams quant = options.containsKey("quant") ? parseQuant(options.get("quant")) : null;
            preprocess(profile, modelSize, layout, quant, new File(positional.get(0)), new File(positional.get(1)));
            return 0;
        }
        if (args[0].equals("postprocess")) {
            expect(positional, 3, "postprocess IMAGES_DIR OUTPUTS_DIR OUT_DIR");
            QuantParams quant = options.containsKey("dequant") ? parseQuant(options.get("dequant")) : null;
            String[] rgb = option(options, "colour", "24,160,88").split(",");
            Background colour = Background.colour(Integer.parseInt(rgb[0].trim()), Integer.parseInt(rgb[1].trim()),
                    Integer.parseInt(rgb[2].trim()));
            postprocess(profile, modelSize, layout, quant, colour, new File(positional.get(0)),
                    new File(positional.get(1)), new File(positional.get(2)));
            return 0;
        }
        throw new IllegalArgumentException("unknown command " + args[0]
                + " (preprocess, postprocess, android-artefacts)");
    }

    private static String option(Map<String, String> options, String key, String fallback) {
        String value = options.containsKey(key) ? options.get(key) : fallback;
        if (value == null) {
            throw new IllegalArgumentException("--" + key + " is required");
        }
        return value;
    }

    private static void expect(List<String> positional, int count, String usage) {
        if (positional.size() != count) {
            throw new IllegalArgumentException("usage: " + usage);
        }
    }

    /** "int8:0.0078125:0" -> QuantParams. */
    static QuantParams parseQuant(String text) {
        String[] parts = text.split(":");
        if (parts.length != 3) {
            throw new IllegalArgumentException("quantization must be DTYPE:SCALE:ZERO_POINT, got " + text);
        }
        return new QuantParams(parts[0], Double.parseDouble(parts[1]), Integer.parseInt(parts[2]));
    }

    private static void preprocess(Profile profile, Size modelSize, Layout layout, QuantParams quant, File images,
                                   File tensors) throws Exception {
        Verification.NpyImageSource source = new Verification.NpyImageSource(images);
        for (String name : source.names()) {
            Verification.LoadedImage image = source.load(name);
            NdArray tensor = profile.preprocess(image.argb, image.size, modelSize, layout).get("tensor");
            if (quant != null) {
                tensor = new NdArray(quant.ndType(), Quantization.quantize(tensor.floats(), quant), tensor.shape);
            }
            Npy.write(new File(tensors, name + ".npy"), tensor);
        }
    }

    private static void postprocess(Profile profile, Size modelSize, Layout layout, QuantParams quant,
                                    Background colour, File images, File outputs, File out) throws Exception {
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("kind", "external (model outputs read from " + outputs + ")");
        GoldenWriter writer = new GoldenWriter(out, "java", model);
        Verification.NpyImageSource source = new Verification.NpyImageSource(images);
        for (String name : source.names()) {
            Verification.LoadedImage image = source.load(name);
            NdArray output = Npy.read(new File(outputs, name + ".npy"));
            float[] values = quant != null ? Quantization.dequantize(output.bytes(), quant) : output.floats();
            PreprocessState state = profile.plan(image.size, modelSize, layout);
            Steps post = profile.postprocess(values, output.shape, state);
            float[] alpha = post.floats("alpha");
            byte[] rgb = Pixels.rgbFromArgb(image.argb);
            Size size = image.size;
            GoldenWriter.Case c = writer.startCase(profile.name(), name, state);
            c.add("post_alpha", post.get("alpha"));
            c.add("alpha8", NdArray.uint8(profile.alphaToUint8(alpha), size.height, size.width));
            c.add("composite_colour", NdArray.uint8(profile.composite(rgb, size, alpha, colour), size.height,
                    size.width, 3));
            c.add("composite_blur", NdArray.uint8(profile.composite(rgb, size, alpha, Background.blur()), size.height,
                    size.width, 3));
        }
        writer.finish();
    }
}
