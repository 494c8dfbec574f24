import LavaJSON
import Testing
