// Background blur or replacement with the feathered alpha (BackdropKit's featherAlpha: 0 for
// background, 255 for the person), on the GPU with Core Image.
import CoreImage
import CoreImage.CIFilterBuiltins
import CoreVideo

final class Compositor {
    enum Mode: String, CaseIterable, Identifiable {
        case blur, replace
        var id: String { rawValue }
    }

    private let context = CIContext()

    /// The camera frame with its background (alpha 0) blurred or replaced; alpha is (height, width) uint8.
    func composite(_ pixelBuffer: CVPixelBuffer, alpha: [UInt8], width: Int, height: Int, mode: Mode) -> CGImage? {
        let camera = CIImage(cvPixelBuffer: pixelBuffer)  // Core Image converts 420f / 420v to RGB itself
        let mask = CIImage(bitmapData: Data(alpha), bytesPerRow: width, size: CGSize(width: width, height: height),
                           format: .L8, colorSpace: nil)
        let background: CIImage
        switch mode {
        case .blur:
            background = camera.clampedToExtent().applyingGaussianBlur(sigma: 18).cropped(to: camera.extent)
        case .replace:
            let g = CIFilter.linearGradient()
            g.point0 = CGPoint(x: 0, y: 0)
            g.point1 = CGPoint(x: 0, y: camera.extent.height)
            g.color0 = CIColor(red: 0.05, green: 0.25, blue: 0.45)
            g.color1 = CIColor(red: 0.55, green: 0.8, blue: 0.9)
            background = (g.outputImage ?? CIImage(color: .gray)).cropped(to: camera.extent)
        }
        let blend = CIFilter.blendWithMask()
        blend.inputImage = camera
        blend.backgroundImage = background
        blend.maskImage = mask
        guard let out = blend.outputImage else { return nil }
        return context.createCGImage(out, from: camera.extent)
    }
}
